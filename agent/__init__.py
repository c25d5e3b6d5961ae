"""The orchestrator, System-2 backends, coaching, recorder, API, store and CLI."""
