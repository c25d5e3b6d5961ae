"""`hearth console`: start the Streamlit operator console against a running hearth API.

Streamlit always runs headless with usage statistics off: without that it asks for an e-mail address on stdin
the first time and hangs any non-interactive start (CI, docker, `hearth demo`). The console reads its settings
from environment variables (ui/settings.py) because Streamlit owns the script's command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


def streamlit_args(host: str, port: int) -> list[str]:
    """The `streamlit run` arguments: headless, no telemetry, no file watcher, bound where asked."""
    return [
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--theme.base",
        "dark",
    ]


def console_env(
    api_url: str, browser_api_url: str | None, stt_model: str | None, live_fps: float, token: str | None
) -> dict[str, str]:
    from ui.settings import ENV_API_URL, ENV_BROWSER_API_URL, ENV_LIVE_FPS, ENV_STT_MODEL, ENV_TOKEN

    env = {
        ENV_API_URL: api_url,
        ENV_BROWSER_API_URL: browser_api_url or api_url,
        ENV_LIVE_FPS: f"{live_fps:g}",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_SERVER_HEADLESS": "true",
    }
    if stt_model:
        env[ENV_STT_MODEL] = stt_model
    if token:
        env[ENV_TOKEN] = token
    return env


def command(
    api_url: str = typer.Option(
        "http://127.0.0.1:8080", "--api-url", envvar="HEARTH_API_URL", help="The hearth API as this machine reaches it."
    ),
    browser_api_url: str | None = typer.Option(
        None, "--browser-api-url", help="The API as operators' browsers reach it (live video); default --api-url."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to serve the console on."),
    port: int = typer.Option(8501, "--port", help="Console port."),
    stt_model: str | None = typer.Option(
        None,
        "--stt-model",
        envvar="HEARTH_STT_MODEL",
        help="Local faster-whisper model (path or name in the local cache) for push-to-talk coaching.",
    ),
    live_fps: float = typer.Option(15.0, "--live-fps", min=1.0, max=60.0, help="Camera frames/s to ask the API for."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="HEARTH_CONSOLE_TOKEN",
        help="Prefill the login form with this token (single-user setups).",
    ),
) -> None:
    """Serve the console (live view, task controls, coaching, e-stop, episode review) on HOST:PORT."""
    import shutil
    import sys

    from ui.api_client import normalize_base_url

    try:
        api = normalize_base_url(api_url)
        browser = normalize_base_url(browser_api_url) if browser_api_url else api
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--api-url") from None
    env = {**os.environ, **console_env(api, browser, stt_model, live_fps, token)}
    executable = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or shutil.which("streamlit")
    args = (
        [executable, *streamlit_args(host, port)]
        if executable
        else [sys.executable, "-m", "streamlit", *streamlit_args(host, port)]
    )
    typer.echo(f"hearth console on http://{host}:{port} (API {api})")
    sys.stdout.flush()
    os.execvpe(args[0], args, env)
