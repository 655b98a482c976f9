"""Command help that reads whole at 80 columns: wrapped between words, never cut.

Typer's rich help lays every option out in five or six columns; at 80 columns the help column is
a dozen characters wide and words are cut with '…'. The app uses click's plain layout instead
(``rich_markup_mode=None``), with two changes made here:

- lines break at spaces only, never after the hyphen of ``--no-skip-bad-rows`` or
  ``self-contained``;
- the list of commands shows each command's whole first paragraph, where click would cut it
  at a fixed length with '...';
- an option's value is shown by its name in capitals (``--max-tokens MAX_TOKENS``) rather
  than its Python type (``<int range>``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_origin

import typer
from typer.main import get_command

if TYPE_CHECKING:
    from typer._click.formatting import HelpFormatter as _Formatter
else:  # whichever click this typer uses: its own copy or the click package
    _Formatter = typer.Context.formatter_class

__all__ = ["readable_help"]

# Stands in for '-' while text is wrapped (same length; not a place to break a line).
_HYPHEN = "\ue000"


def _keep(text: str) -> str:
    return text.replace("-", _HYPHEN)


class _HelpFormatter(_Formatter):
    """Click's help layout, breaking lines only between words."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(_keep(prog), _keep(args), prefix)

    def write_text(self, text: str) -> None:
        super().write_text(_keep(text))

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        super().write_dl([(_keep(a), _keep(b)) for a, b in rows], col_max, col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HYPHEN, "-")


class _HelpContext(typer.Context):
    formatter_class = _HelpFormatter


def first_paragraph(text: str) -> str:
    """The first paragraph of a command's help, on one line."""
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def _configure(command: Any) -> None:
    command.context_class = _HelpContext
    for param in getattr(command, "params", []):
        if param.param_type_name != "option" or param.is_flag or param.metavar:
            continue
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and get_origin(descriptor.annotation) is Literal:
            continue  # typer lists the choices: [table|csv|json]
        flag = max(param.opts, key=len).lstrip("-")
        param.metavar = flag.upper().replace("-", "_")  # --max-tokens MAX_TOKENS, not <int range>
    for sub in getattr(command, "commands", {}).values():
        if not sub.short_help and sub.help:
            sub.short_help = first_paragraph(sub.help)
        _configure(sub)


def readable_help(app: typer.Typer) -> Callable[[], Any]:
    """``app`` as a click command whose help (and every subcommand's) reads whole."""
    command = get_command(app)
    _configure(command)
    return command
