"""`hearth episodes list|show|export-rerun`: review recorded episodes (any LeRobotDataset v3.0 folder).

Without `--root` the dataset is the one the deployment records a robot into (`<home>/episodes/<robot id>`, see
agent/settings.py), the same folder the API, `hearth demo` and `hearth run` write, so what they recorded is
what this lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)

_root = typer.Option(None, "--root", "-r", help="Dataset folder (LeRobotDataset v3.0); default: the robot's.")
_deployment = typer.Option("local", "--deployment", "-d", help="Deployment name or YAML path (home: HEARTH_HOME).")
_robot = typer.Option(None, "--robot", help="Robot id whose episodes to read (default: the deployment's first).")


def _resolve_root(root: Path | None, deployment: str, robot: str | None) -> Path:
    """--root, else the deployment's dataset for --robot (or its first robot)."""
    if root is not None:
        return root
    from agent.settings import load_deployment

    config = load_deployment(deployment)
    robot_id = robot or (config.robots[0].id if config.robots else "sim-kitchen")
    return config.episodes_root(robot_id)


def _reader(root: Path | None, deployment: str = "local", robot: str | None = None):
    from policy.data.reader import LeRobotDatasetReader

    root = _resolve_root(root, deployment, robot)
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
    root: Path | None = _root,
    deployment: str = _deployment,
    robot: str | None = _robot,
    task: str | None = typer.Option(None, "--task", help="Only episodes whose task contains this text."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List episodes with task, length, outcome and success."""
    reader = _reader(root, deployment, robot)
    episodes = [e for e in reader.episodes if task is None or task in e.task]
    if as_json:
        for e in episodes:
            typer.echo(
                json.dumps(
                    {
                        "index": e.index,
                        "task": e.task,
                        "length": e.length,
                        "duration_s": e.length / reader.fps,
                        "outcome": e.outcome,
                        "success": e.success,
                        "subtasks": len(e.subtasks),
                        "events": len(e.events),
                        "recovered": e.recovered,
                    }
                )
            )
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
    root: Path | None = _root,
    deployment: str = _deployment,
    robot: str | None = _robot,
    as_json: bool = typer.Option(False, "--json", help="Print the episode as JSON."),
) -> None:
    """Show one episode: outcome, subtask timeline (with who set each subtask) and events."""
    reader = _reader(root, deployment, robot)
    e = _episode(reader, index)
    if as_json:
        typer.echo(json.dumps(e.to_dict(), indent=2))
        return
    typer.echo(f"episode {e.index}: {e.task}")
    typer.echo(
        f"  frames {e.length} ({e.length / reader.fps:.1f} s at {reader.fps:g} fps), outcome {e.outcome}, "
        f"success {e.success}" + (", recovered after a crash" if e.recovered else "")
    )
    typer.echo(
        f"  cameras {', '.join(reader.camera_names)}; videos: "
        + ", ".join(str(reader.video_path(e.index, c).relative_to(reader.root)) for c in reader.camera_names)
    )
    timeline = [(s["frame_index"], f"subtask  {s['text']}  [{s['source']}]") for s in e.subtasks]
    timeline += [(ev["frame_index"], f"{ev['kind']:<8} {ev['text']}") for ev in e.events]
    for frame, text in sorted(timeline, key=lambda item: item[0]):
        typer.echo(f"  {frame / reader.fps:>7.2f}s  #{frame:<5} {text}")


@app.command("export-rerun")
def export_rerun(
    index: int = typer.Argument(..., help="Episode index."),
    root: Path | None = _root,
    deployment: str = _deployment,
    robot: str | None = _robot,
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .rrd (default: episode-<index>.rrd)."),
) -> None:
    """Export one episode to a Rerun .rrd (cameras, state, actions, subtask timeline, events)."""
    from policy.data.rerun_export import RerunUnavailable, export_episode

    reader = _reader(root, deployment, robot)
    e = _episode(reader, index)
    try:
        path = export_episode(reader, e.index, out or Path(f"episode-{e.index}.rrd"))
    except RerunUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {path} ({path.stat().st_size} bytes); open it with: rerun {path}")
