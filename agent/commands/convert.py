"""`hearth convert`: turn LeRobot pi05 or openpi-converted weights into a servable hearth checkpoint.

Released weights (`lerobot/pi05_base`, openpi's converted `pi05_*`) know nothing about your robot: which cameras fill
which image slot, how many state and action dimensions it has, and its normalization statistics. This command adds
exactly that, checks the weights strictly (missing, unexpected and misshaped tensors are named), and writes a folder
that `hearth serve-policy --checkpoint` loads. Optionally it also exports the VLM half in Hugging Face PaliGemma
layout so vLLM can serve System 2.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _names(explicit: str | None, count: int | None, prefix: str, option: str) -> list[str]:
    if explicit:
        return [n.strip() for n in explicit.split(",") if n.strip()]
    if count:
        return [f"{prefix}{i}" for i in range(count)]
    typer.echo(f"error: give {option}-names (comma-separated) or {option}-dim", err=True)
    raise typer.Exit(2)


def command(
    source: Path = typer.Argument(..., help="Folder with model.safetensors + config.json (LeRobot or openpi layout)."),
    out: Path = typer.Argument(..., help="Where to write the hearth checkpoint."),
    tokenizer: Path = typer.Option(
        ..., "--tokenizer", help="PaliGemma tokenizer.model (or a tokenizer.json / folder)."
    ),
    cameras: str = typer.Option(
        ..., "--cameras", help="Your camera names in image-slot order (base, left wrist, right wrist)."
    ),
    state_names: str | None = typer.Option(None, "--state-names", help="Comma-separated state names."),
    state_dim: int | None = typer.Option(None, "--state-dim", help="Or just the number of state dims."),
    action_names: str | None = typer.Option(None, "--action-names", help="Comma-separated action names."),
    action_dim: int | None = typer.Option(None, "--action-dim", help="Or just the number of action dims."),
    norm_stats: Path | None = typer.Option(None, "--norm-stats", help="openpi norm_stats.json for YOUR robot's data."),
    control_hz: float = typer.Option(20.0, "--control-hz", help="Your robot's control rate."),
    config_preset: str | None = typer.Option(
        None, "--config-preset", help="Override the architecture with a hearth preset (e.g. tiny test checkpoints)."
    ),
    export_paligemma: Path | None = typer.Option(
        None, "--export-paligemma", help="Also write the VLM in Hugging Face PaliGemma layout (for vLLM) here."
    ),
) -> None:
    """Convert LeRobot/openpi π₀.₅ weights into a hearth checkpoint for `hearth serve-policy`."""
    from policy.checkpoints import CheckpointError
    from policy.checkpoints import export_paligemma as export_vlm
    from policy.inference import Pi05Policy
    from policy.normalize import NormStats
    from policy.tokenizers.text import TextTokenizer, TokenizerLoadError

    states = _names(state_names, state_dim, "state_", "--state")
    actions = _names(action_names, action_dim, "action_", "--action")
    camera_names = [c.strip() for c in cameras.split(",") if c.strip()]
    try:
        text_tokenizer = TextTokenizer.load(tokenizer)
        stats = NormStats.load(norm_stats) if norm_stats else None
        config = None
        if config_preset:
            from policy.model.config import preset

            config = preset(
                config_preset,
                vocab_size=text_tokenizer.vocab_size,
                eos_token_id=text_tokenizer.eos_id,
                pad_token_id=text_tokenizer.pad_id,
            )
        policy = Pi05Policy.from_pretrained(
            source,
            text_tokenizer,
            camera_names=camera_names,
            state_names=states,
            action_names=actions,
            control_hz=control_hz,
            norm_stats=stats,
            config=config,
            device="cpu",
        )
    except (CheckpointError, TokenizerLoadError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    policy.save(out)
    typer.echo(
        f"wrote hearth checkpoint {out} (cameras {camera_names}, {len(states)} state, {len(actions)} action dims)"
    )
    if export_paligemma is not None:
        export_vlm(policy.model, export_paligemma, tokenizer=text_tokenizer)
        typer.echo(f"wrote PaliGemma (Hugging Face layout) {export_paligemma}")
