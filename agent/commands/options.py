"""Options several commands share, defined once so their names, checks and help agree.

`--random-preset` is checked against the model's preset table (policy/model/config.py, a light import with no
torch) when the command line is parsed, so `--random-preset huge` is a usage error naming the presets instead of
a traceback from deep inside model construction, and `--help` lists them.
"""

from __future__ import annotations

import typer

from policy.model.config import preset_names


def _known_preset(value: str | None) -> str | None:
    if value is not None and value not in preset_names():
        raise typer.BadParameter(f"unknown preset {value!r}; choose one of {', '.join(preset_names())}")
    return value


def random_preset_option(help_text: str) -> typer.models.OptionInfo:
    """`--random-preset NAME`, one of the model presets (tiny, sim-small, pi05)."""
    return typer.Option(
        None,
        "--random-preset",
        callback=_known_preset,
        metavar="|".join(preset_names()),
        help=help_text,
    )
