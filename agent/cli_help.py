"""Help text that reads like a Unix tool's: `TASK` in the usage line, nothing after a flag that takes no value.

Typer 0.2x renders a type column for every parameter (`--headless <bool>`, `--task <str>`) and wraps required
arguments in braces (`hearth run [OPTIONS] {task}`). A `<bool>` after a flag reads as "this flag takes a value"
and braces are not the usual notation for a required argument, so `HearthGroup` rewrites the parameters of
every command once, when typer builds the command tree: flags get an empty metavar and arguments the
conventional upper-case name (`TASK`, `[INDEX]` when optional).
"""

from __future__ import annotations

from collections.abc import Callable

import click
from typer.core import TyperArgument, TyperGroup, TyperOption


class PlainArgument(TyperArgument):
    """A typer argument shown as click shows one: `TASK` when required, `[TASK]` when optional."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if not self.required:
            name = f"[{name}]"
        if self.nargs != 1:
            name += "..."
        return name


def plain_help(command: click.Command) -> None:
    """Rewrite `command`'s parameters (and its subcommands', recursively) for conventional help output."""
    for param in command.params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "arg").upper()
            param.__class__ = PlainArgument
    command.get_help_option = _flag_without_metavar(command.get_help_option)  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def _flag_without_metavar(get_help_option: Callable[[click.Context], click.Option | None]):
    """`--help` is created on demand, outside `params`; give it the same empty metavar as the other flags."""

    def wrapped(ctx: click.Context) -> click.Option | None:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return wrapped


class HearthGroup(TyperGroup):
    """The root `hearth` group: builds as typer's, then rewrites every command's help (see plain_help)."""

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]
        plain_help(self)
