"""The operator / home-automation API: FastAPI REST under /api/v1 and the live WebSocket (see app.create_app)."""
