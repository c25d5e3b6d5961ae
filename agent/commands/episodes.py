"""`hearth episodes list|show|export-rerun`: review recorded episodes (any LeRobotDataset v3.0 folder)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)

_root = typer.Option(Path("runs/episodes"), "--root", "-r", help="Dataset folder (LeRobotDataset v3.0).")


def _reader(root: Path):
    from policy.data.reader import LeRobotDatasetReader

    try:
        return LeRobotDatasetReader(root)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _episode(reader, index: int):
    try:
        return reader.episode(index)
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_episodes(
    root: Path = _root,
    task: str | None = typer.Option(None, "--task", help="Only episodes whose task contains this text."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List episodes with task, length, outcome and success."""
    reader = _reader(root)
    episodes = [e for e in reader.episodes if task is None or task in e.task]
    if as_json:
        for e in episodes:
            typer.echo(json.dumps({"index": e.index, "task": e.task, "length": e.length, "duration_s": e.length / reader.fps,
                                   "outcome": e.outcome, "success": e.success, "subtasks": len(e.subtasks),
                                   "events": len(e.events), "recovered": e.recovered}))
        return
    typer.echo(f"{'#':>4}  {'frames':>6}  {'secs':>6}  {'outcome':<18} {'ok':<5} task")
    for e in episodes:
        ok = "-" if e.success is None else ("yes" if e.success else "no")
        outcome = (e.outcome or "-") + (" (recovered)" if e.recovered else "")
        typer.echo(f"{e.index:>4}  {e.length:>6}  {e.length / reader.fps:>6.1f}  {outcome:<18} {ok:<5} {e.task}")
    typer.echo(f"{len(episodes)} episodes, {sum(e.length for e in episodes)} frames at {reader.fps:g} fps")


@app.command("show")
def show(
    index: int = typer.Argument(..., help="Episode index."),
    root: Path = _root,
    as_json: bool = typer.Option(False, "--json", help="Print the episode as JSON."),
) -> None:
    """Show one episode: outcome, subtask timeline (with who set each subtask) and events."""
    reader = _reader(root)
    e = _episode(reader, index)
    if as_json:
        typer.echo(json.dumps(e.to_dict(), indent=2))
        return
    typer.echo(f"episode {e.index}: {e.task}")
    typer.echo(f"  frames {e.length} ({e.length / reader.fps:.1f} s at {reader.fps:g} fps), outcome {e.outcome}, "
               f"success {e.success}" + (", recovered after a crash" if e.recovered else ""))
    typer.echo(f"  cameras {', '.join(reader.camera_names)}; videos: "
               + ", ".join(str(reader.video_path(e.index, c).relative_to(reader.root)) for c in reader.camera_names))
    timeline = [(s["frame_index"], f"subtask  {s['text']}  [{s['source']}]") for s in e.subtasks]
    timeline += [(ev["frame_index"], f"{ev['kind']:<8} {ev['text']}") for ev in e.events]
    for frame, text in sorted(timeline, key=lambda item: item[0]):
        typer.echo(f"  {frame / reader.fps:>7.2f}s  #{frame:<5} {text}")


@app.command("export-rerun")
def export_rerun(
    index: int = typer.Argument(..., help="Episode index."),
    root: Path = _root,
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .rrd (default: episode-<index>.rrd)."),
) -> None:
    """Export one episode to a Rerun .rrd (cameras, state, actions, subtask timeline, events)."""
    from policy.data.rerun_export import RerunUnavailable, export_episode

    reader = _reader(root)
    e = _episode(reader, index)
    try:
        path = export_episode(reader, e.index, out or Path(f"episode-{e.index}.rrd"))
    except RerunUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path} ({path.stat().st_size} bytes); open it with: rerun {path}")
