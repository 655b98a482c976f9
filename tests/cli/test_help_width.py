"""Every command's ``--help`` reads whole at 80 columns: no line longer, nothing cut, no word split.

The commands are discovered from the typer app, so a new command or option is covered as soon
as it exists. Each help runs as a user runs it: a real process with ``COLUMNS=80``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from typer.main import get_command

from keypolicy._help import first_paragraph
from keypolicy.cli import app

WIDTH = 80


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(get_command(app))


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], str]:
    """``keypolicy PATH --help`` of every command, run side by side."""
    env = {k: v for k, v in os.environ.items() if k not in ("TERMINAL_WIDTH", "FORCE_COLOR")}
    env["COLUMNS"] = str(WIDTH)
    running = {
        path: subprocess.Popen(
            [sys.executable, "-m", "keypolicy", *path, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for path, _ in COMMANDS
    }
    outputs = {}
    for path, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert err == ""
        outputs[path] = out
    return outputs


def test_every_command_is_found() -> None:
    names = {path[0] for path, _ in COMMANDS if path}
    assert {"check", "simulate", "compare", "report", "usage", "schema", "mock-server"} <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "keypolicy" for p, _ in COMMANDS]
)
def test_help_fits_80_columns_and_says_everything(
    helps: dict[tuple[str, ...], str], path: tuple[str, ...], command: Any
) -> None:
    out = helps[path]
    too_long = [line for line in out.splitlines() if len(line) > WIDTH]
    assert too_long == [], f"lines over {WIDTH} columns"
    assert "\u2026" not in out  # rich's '…' where it cuts text
    flat, words = _flat(out), set(re.split(r"[\s,/]+", out))
    if command.help:
        assert _flat(command.help) in flat, "the command's help is not whole"
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        help_text = getattr(param, "help", None)
        if help_text:
            assert _flat(help_text) in flat, f"the help of {param.name} is not whole"
        for opt in [*param.opts, *param.secondary_opts]:
            assert not opt.startswith("-") or opt in words, f"{opt} is missing or split"
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden and sub.help:  # the list of commands: each summary whole, no '...'
            assert f"{name} {first_paragraph(sub.help)}" in flat, f"the summary of {name}"
