"""Export one recorded episode to a Rerun `.rrd` file for frame-by-frame review.

Layout in the viewer: `cameras/<name>` images, `state/<joint>` and `action/<joint>` scalar series (names from
info.json), `subtask` (a text log at every change, with its source), `events/<kind>` (coaching, e-stop, pause...),
`chunk/id` and `chunk/index`; timelines `frame_index` and `time` (frame_index / fps, as the dataset defines it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policy.data.reader import LeRobotDatasetReader


class RerunUnavailable(RuntimeError):
    """rerun-sdk is not installed."""


def _rerun():
    try:
        import rerun as rr
    except ImportError as exc:
        raise RerunUnavailable("exporting to Rerun needs the rerun-sdk package: pip install rerun-sdk") from exc
    return rr


def export_episode(reader: LeRobotDatasetReader, episode_index: int, path: str | Path, jpeg_quality: int = 90) -> Path:
    """Write episode `episode_index` of `reader`'s dataset to `path` (.rrd); returns the path."""
    rr = _rerun()
    info = reader.episode(episode_index)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream(application_id="hearth-episodes", recording_id=f"{reader.root.name}-episode-{info.index}")
    rec.save(str(path))
    try:
        rec.log(
            "task", rr.TextDocument(f"{info.task}\n\noutcome: {info.outcome}, success: {info.success}"), static=True
        )
        arrays = reader.episode_arrays(info.index)
        frames = np.arange(info.length)
        times = frames / reader.fps
        indexes = [rr.TimeColumn("frame_index", sequence=frames), rr.TimeColumn("time", duration=times)]
        for group, names, values in (
            ("state", reader.state_names, arrays["state"]),
            ("action", reader.action_names, arrays["action"]),
        ):
            for d, name in enumerate(names):
                rec.send_columns(f"{group}/{name}", indexes=indexes, columns=rr.Scalars.columns(scalars=values[:, d]))
        for name in ("chunk_id", "chunk_index"):
            rec.send_columns(
                f"chunk/{name.split('_')[1]}",
                indexes=indexes,
                columns=rr.Scalars.columns(scalars=arrays[name].astype(np.float64)),
            )
        for subtask in info.subtasks:
            rec.set_time("frame_index", sequence=int(subtask["frame_index"]))
            rec.set_time("time", duration=float(subtask["timestamp"]))
            rec.log("subtask", rr.TextLog(f"{subtask['text']}  [{subtask['source']}]", level="INFO"))
        for event in info.events:
            rec.set_time("frame_index", sequence=int(event["frame_index"]))
            rec.set_time("time", duration=float(event["timestamp"]))
            level = "WARN" if event["kind"] in ("estop", "pause", "watchdog") else "INFO"
            rec.log(f"events/{event['kind']}", rr.TextLog(event["text"], level=level))
        for camera in reader.camera_names:
            video = reader.decode_video(info.index, camera)
            for i, image in enumerate(video):
                rec.set_time("frame_index", sequence=i)
                rec.set_time("time", duration=float(times[i]))
                rec.log(f"cameras/{camera}", rr.Image(image).compress(jpeg_quality=jpeg_quality))
    finally:
        rec.flush()
        rec.disconnect()
    return path
