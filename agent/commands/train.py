"""`hearth train`: train or fine-tune a π₀.₅ model on a LeRobotDataset (or prepared arrays) with a YAML recipe.

Multi-GPU / multi-process: the same command under torchrun, e.g.
    torchrun --nproc-per-node 8 -m agent.cli train --config configs/training/sim-small-gpu.yaml --data D --out O
"""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    config: Path = typer.Option(..., "--config", "-c", help="Training recipe YAML (configs/training/*.yaml)."),
    data: Path = typer.Option(
        ..., "--data", "-d", help="LeRobotDataset v3.0 folder, or a run's prepared data/ folder."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: metrics.csv, train_state/, checkpoint/."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last saved state."),
    init: Path | None = typer.Option(None, "--init", help="Fine-tune from this hearth checkpoint folder."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train with flow matching + FAST/subtask CE (knowledge insulation), EMA, checkpoints and exact resume."""
    from agent.config import load_config, resolve_config_path
    from policy.training.config import TrainConfig

    recipe = load_config(TrainConfig, resolve_config_path("training", str(config)), set_)
    if not data.exists():
        raise typer.BadParameter(f"{data} does not exist", param_hint="--data")
    if init is not None and not init.is_dir():
        raise typer.BadParameter(f"{init} is not a checkpoint folder", param_hint="--init")
    from policy.train import TrainingError, train

    try:
        result = train(recipe, data, out, resume=resume, init=init, progress=progress)
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"training failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if result.checkpoint is not None:
        typer.echo(f"trained {result.steps} steps; checkpoint: {result.checkpoint}")
        metrics = " ".join(f"{k}={v:.4g}" for k, v in result.final_metrics.items())
        typer.echo(f"last metrics: {metrics}")
