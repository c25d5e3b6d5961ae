"""One router module per resource; app.py mounts them all under /api/v1."""
