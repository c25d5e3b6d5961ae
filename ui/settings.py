"""Console settings, read from the environment that `hearth console` sets for the Streamlit process.

Why environment variables: Streamlit owns the command line of its script run, and env vars reach every
session of the server without globals. Two API URLs because the console server and the browser may see the API
at different addresses (in docker-compose the server reaches `http://api:8080`, the browser `localhost:8080`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_API_URL = "HEARTH_CONSOLE_API_URL"
ENV_BROWSER_API_URL = "HEARTH_CONSOLE_BROWSER_API_URL"
ENV_STT_MODEL = "HEARTH_CONSOLE_STT_MODEL"
ENV_LIVE_FPS = "HEARTH_CONSOLE_LIVE_FPS"
ENV_TOKEN = "HEARTH_CONSOLE_TOKEN"
DEFAULT_API_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class ConsoleSettings:
    api_url: str = DEFAULT_API_URL
    browser_api_url: str = DEFAULT_API_URL
    stt_model: str | None = None
    live_fps: float = 15.0
    prefilled_token: str | None = None

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        api_url = os.environ.get(ENV_API_URL) or DEFAULT_API_URL
        try:
            fps = float(os.environ.get(ENV_LIVE_FPS) or 15.0)
        except ValueError:
            fps = 15.0
        return cls(
            api_url=api_url,
            browser_api_url=os.environ.get(ENV_BROWSER_API_URL) or api_url,
            stt_model=os.environ.get(ENV_STT_MODEL) or None,
            live_fps=fps,
            prefilled_token=os.environ.get(ENV_TOKEN) or None,
        )
