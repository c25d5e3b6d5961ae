"""Browser-side components: the live view and the episode player, as self-contained HTML/JS.

Why custom HTML: Streamlit reruns a Python script per interaction, far too slow for video, so the live view
opens the API's WebSocket from the browser itself and paints JPEG frames, events and plots there; the episode
player scrubs synchronized videos and plot cursors client-side for the same reason. Both pages are static
files in ui/static with one JSON config object substituted in (no external scripts: consoles run offline).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

from ui.api_client import live_ws_url

STATIC = Path(__file__).resolve().parent / "static"
LIVE_PLACEHOLDER = "/*__HEARTH_CONFIG__*/{}"
EPISODE_PLACEHOLDER = "/*__HEARTH_EPISODE__*/{}"


@cache
def _template(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element (no `</script>` or HTML comment openers)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def live_view_html(browser_api_url: str, robot_id: str, ticket: str, fps: float = 15.0, size: int | None = None) -> str:
    """The live page's HTML: connects to /api/v1/robots/{robot_id}/live with a live `ticket` at `fps`.

    A ticket (POST /api/v1/live/tickets, single use) instead of the bearer token: a URL's query string ends up in
    access logs, and a spent ticket there opens nothing.

    `size` None asks for each camera's own operator frames (the API does not resize them): the page scales them
    to fit, so an upscaled policy frame is never presented as a sharp picture.
    Nothing that changes while the robot runs goes in here (the e-stop and task state arrive in the socket's
    hello): Streamlit keeps the iframe only while this HTML is identical, and a reload drops the timeline.
    """
    config = {
        "apiUrl": browser_api_url,
        "robotId": robot_id,
        "wsUrl": live_ws_url(browser_api_url, robot_id, ticket=ticket, fps=f"{fps:g}", size=size),
    }
    return _template("live_view.html").replace(LIVE_PLACEHOLDER, _script_json(config))


def normalize_timeline(timeline: dict[str, Any], length: int) -> tuple[list[dict], list[dict]]:
    """Subtasks as [start_frame, end_frame) segments and events with a frame, from the API's timeline body.

    Reads the one spelling the API emits (GET /episodes/{robot}/{index}/timeline, from policy/data/reader.py):
    subtasks `{text, source, frame_index}`, events `{kind, text, frame_index}`.
    """
    raw = sorted(timeline["subtasks"], key=lambda s: int(s["frame_index"]))
    subtasks = []
    for i, item in enumerate(raw):
        start = int(item["frame_index"])
        end = int(raw[i + 1]["frame_index"]) if i + 1 < len(raw) else length
        subtasks.append(
            {
                "text": str(item["text"]),
                "source": str(item["source"]),
                "start_frame": start,
                "end_frame": max(end, start),
            }
        )
    events = [
        {"kind": str(e["kind"]), "text": str(e["text"] or ""), "frame": int(e["frame_index"])}
        for e in timeline["events"]
    ]
    return subtasks, events


def episode_player_html(
    episode: dict[str, Any],
    timeline: dict[str, Any],
    data: dict[str, Any],
    videos: dict[str, bytes],
) -> str:
    """The episode player's HTML with everything embedded (videos as data URLs: a <video> cannot send a token)."""
    fps = float(data.get("fps") or 20.0)
    length = int(data.get("length") or episode.get("length") or len(data.get("timestamp", [])) or 1)
    subtasks, events = normalize_timeline(timeline, length)
    cameras = [
        {"name": name, "src": "data:video/mp4;base64," + base64.b64encode(blob).decode("ascii"), "codec": _codec(blob)}
        for name, blob in videos.items()
    ]
    payload = {
        "robotId": episode.get("robot_id"),
        "episodeIndex": episode.get("episode_index"),
        "fps": fps,
        "length": length,
        "duration": length / fps,
        "cameras": cameras,
        "subtasks": subtasks,
        "events": events,
        "data": {k: data.get(k, []) for k in ("timestamp", "action", "state", "action_names", "state_names")},
    }
    return _template("episode_player.html").replace(EPISODE_PLACEHOLDER, _script_json(payload))


def _codec(blob: bytes) -> str:
    """The video codec from the MP4 sample description (enough to explain a browser that cannot play it)."""
    head = blob[: 1 << 16]
    for tag, name in ((b"av01", "AV1"), (b"avc1", "H.264"), (b"hvc1", "HEVC"), (b"hev1", "HEVC"), (b"vp09", "VP9")):
        if tag in head or tag in blob[-(1 << 16) :]:
            return name
    return "unknown"
