"""Persistent store for the API (SQLAlchemy; SQLite by default, PostgreSQL by URL)."""

from agent.store.records import StoredEpisode, StoredEvent, StoredTask, TokenInfo
from agent.store.store import NotFound, Store, hash_token

__all__ = ["NotFound", "Store", "StoredEpisode", "StoredEvent", "StoredTask", "TokenInfo", "hash_token"]
