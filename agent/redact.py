"""Masking secrets before a config or a status leaves the process (`hearth config show`, the health route).

What counts as secret: values under keys that name a credential (`api_key`, `secret`, `token`, `password`), the
password in a URL's userinfo (`postgresql://user:PASS@host/db`), and a webhook URL's path and query, which are
the credential for Home Assistant webhooks (`/api/webhook/<id>`: anyone who knows the id can trigger it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
SECRET_KEY_PARTS = ("api_key", "secret", "token", "password")


def is_secret_key(key: str) -> bool:
    """`api_key`, `openai_api_key`, `secret`, `HEARTH_CONSOLE_TOKEN`, ... (case-insensitive)."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def mask_url_password(url: str) -> str:
    """`postgresql://hearth:pw@db/hearth` -> `postgresql://hearth:***@db/hearth`; other URLs unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def mask_url_path(url: str) -> str:
    """Keep scheme and host (enough to recognise the endpoint), hide path and query: `http://ha:8123/***`."""
    parts = urlsplit(mask_url_password(url))
    if not parts.path.strip("/") and not parts.query:
        return urlunsplit(parts._replace(fragment=""))
    return urlunsplit(parts._replace(path=f"/{MASK}", query="", fragment=""))


def mask_secrets(tree: Any, key: str = "") -> Any:
    """A copy of a JSON-like tree with secret values replaced by `***` (None and empty values stay visible)."""
    if isinstance(tree, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        if key == "webhooks":
            return [_mask_webhook(item) for item in tree]
        return [mask_secrets(item, key) for item in tree]
    if isinstance(tree, str) and tree:
        if is_secret_key(key):
            return MASK
        if "://" in tree:
            return mask_url_password(tree)
    return tree


def _mask_webhook(entry: Any) -> Any:
    masked = mask_secrets(entry)
    if isinstance(masked, dict) and isinstance(masked.get("url"), str):
        masked["url"] = mask_url_path(masked["url"])
    return masked
