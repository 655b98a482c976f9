"""What ``keypolicy advise`` does between reading its inputs and writing its outputs, so that
the command in :mod:`keypolicy.cli` stays a thin shell: options parsed into :class:`Settings`,
the search run with a progress bar, the outputs written whole."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keypolicy._native import is_compiled
from keypolicy.advise.candidates import LimitRule
from keypolicy.advise.document import advice_document, console_lines
from keypolicy.advise.page import write_html
from keypolicy.advise.pareto import Objectives
from keypolicy.advise.partitions import ConstraintError, Constraints
from keypolicy.advise.scores import DEFAULT_RANK, METRICS
from keypolicy.advise.search import Advice, Settings, advise, seconds_per_run
from keypolicy.advise.writer import write_policy
from keypolicy.policy.model import Policy
from keypolicy.sim.cluster import open_executor
from keypolicy.sim.traffic import Traffic

__all__ = ["Request", "names", "run", "settings"]


def names(specs: Sequence[str] | None, flag: str) -> tuple[frozenset[str], ...]:
    """``--apart a,b`` options as groups of names (ConstraintError for an empty name)."""
    groups = []
    for spec in specs or []:
        parts = [p.strip() for p in spec.split(",")]
        if any(not p for p in parts):
            raise ConstraintError(f"{flag} {spec!r}: write domain names separated by commas")
        groups.append(frozenset(parts))
    return tuple(groups)


def _score_list(spec: str | None, flag: str, default: Sequence[str]) -> tuple[str, ...]:
    if not spec:
        return tuple(default)
    chosen = tuple(p.strip() for p in spec.split(",") if p.strip())
    unknown = [n for n in chosen if n not in METRICS]
    if unknown or len(set(chosen)) != len(chosen):
        raise ConstraintError(
            f"{flag} {spec!r}: {'unknown ' + ', '.join(unknown) if unknown else 'a score twice'}"
            f" (the scores: {', '.join(METRICS)})"
        )
    return chosen


def settings(
    *,
    apart: Sequence[str] | None,
    together: Sequence[str] | None,
    max_pools: int | None,
    rule: LimitRule,
    rank: str | None,
    objectives: str | None,
    critical: str | None,
    screen: bool,
    headroom: bool,
    max_candidates: int,
) -> Settings:
    """The search's settings from the command line's options (ConstraintError if one is bad)."""
    order = _score_list(rank, "--rank", DEFAULT_RANK)
    missing = [n for n in DEFAULT_RANK if n not in order]
    return Settings(
        constraints=Constraints(names(apart, "--apart"), names(together, "--together"), max_pools),
        rule=rule,
        objectives=Objectives.default(_score_list(objectives, "--objectives", tuple(METRICS))),
        order=(*order, *missing),
        screen=screen,
        headroom=headroom,
        critical=tuple(sorted(names([critical], "--critical")[0])) if critical else None,
        max_candidates=max_candidates,
    )


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    with Progress(
        TextColumn("{task.description:<52}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = int(bar.add_task(phase, total=total))
            bar.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        yield update


@dataclass(frozen=True)
class Request:
    """One ``keypolicy advise`` run: inputs, settings, where it runs, what it writes."""

    policy: Policy
    policy_path: Path
    traffic: Traffic
    seeds: list[int]
    settings: Settings
    jobs: int
    cluster: str | None
    json_out: Path | None
    html_out: Path | None
    policy_out: Path | None


def run(request: Request, console: Console) -> tuple[Advice, list[Path]]:
    """Search, then write every output asked for; the files written (each whole)."""
    estimate = seconds_per_run(request.traffic, is_compiled())
    with open_executor(request.jobs, request.cluster) as executor, _progress(console) as update:
        advice = advise(
            request.policy,
            request.traffic,
            request.seeds,
            executor,
            request.settings,
            on_progress=update,
            estimate_s=estimate,
        )
    written = []
    if request.json_out is not None:
        import json  # noqa: PLC0415

        target = request.json_out.resolve()
        tmp = target.with_name(target.name + ".tmp")
        document = advice_document(advice, request.traffic.name)
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
        written.append(request.json_out)
    if request.html_out is not None:
        write_html(advice, request.traffic.name, request.html_out)
        written.append(request.html_out)
    if request.policy_out is not None:
        write_policy(advice, advice.front[0], request.policy_path, request.policy_out)
        written.append(request.policy_out)
    return advice, written


def report_lines(advice: Advice) -> list[str]:
    """What the console shows after the search."""
    return console_lines(advice)
