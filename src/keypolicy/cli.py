"""The ``keypolicy`` command line.

Errors meant for people go to stderr without a traceback and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from keypolicy import __version__
from keypolicy.policy import PolicyError, load_policy
from keypolicy.policy.dump import dump_policy
from keypolicy.policy.model import Policy
from keypolicy.policy.summary import summarize

app = typer.Typer(
    name="keypolicy",
    help="Decide how LLM API keys, quotas and budgets are used: check, simulate, compare, enforce.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_INVALID = 2


def _err(text: str) -> None:
    print(text, file=sys.stderr)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(f"keypolicy {__version__}")
        raise typer.Exit(0)


@app.command()
def check(
    policies: Annotated[list[Path], typer.Argument(help="Policy files to validate.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat lint warnings as errors.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
    resolved: Annotated[
        bool,
        typer.Option("--resolved", help="Print each policy as merged and normalized, as YAML."),
    ] = False,
) -> None:
    """Validate policies; print a summary of each, or every problem with its file:line:col."""
    failed = False
    for i, path in enumerate(policies):
        try:
            loaded = load_policy(path, strict=strict)
        except PolicyError as exc:
            failed = True
            _err(f"{path}: invalid")
            for issue in exc.issues:
                _err(f"  {issue.severity}: {issue}")
            continue
        if resolved:
            print(("---\n" if i else "") + dump_policy(loaded.policy), end="")
        elif not quiet:
            if i:
                print()
            print("\n".join(summarize(loaded)))
        for warning in loaded.warnings:
            _err(f"  warning: {warning}")
    if failed:
        _err("\nFix the problems above (each names its file:line:column) and run check again.")
        raise typer.Exit(EXIT_INVALID)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of the policy language, for editors (YAML language servers)."""
    document = Policy.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "keypolicy policy, version 1"
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        _err(f"cannot write {out}: {exc.strerror}")
        raise typer.Exit(EXIT_INVALID) from None


def main() -> None:
    """Entry point of the ``keypolicy`` command."""
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
