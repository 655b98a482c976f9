"""What ``keypolicy replay`` and ``keypolicy fidelity`` do, below their command-line shells.

The command functions in :mod:`keypolicy.cli` read the arguments, policies and traffic (with the
same checks as ``simulate``) and call these; each returns the exit status.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from keypolicy.fidelity.compare import FidelityInputError, compare, read_figures
from keypolicy.fidelity.replay import Replay, ReplayProgress, ReplaySettings
from keypolicy.fidelity.table import show
from keypolicy.fidelity.window import TrafficWindow
from keypolicy.policy.model import Policy
from keypolicy.policy.units import parse_duration
from keypolicy.records import RecordWriter
from keypolicy.runtime.secrets import KeyRing, MissingKeysError, environment
from keypolicy.sim.run import run_once
from keypolicy.sim.traffic import Traffic
from keypolicy.sim.transit import Transit

__all__ = ["EXIT_INTERRUPTED", "EXIT_INVALID", "fidelity_command", "parse_window", "replay_command"]

EXIT_INVALID: Final = 2
EXIT_INTERRUPTED: Final = 130

_WINDOW = re.compile(r"^\s*([^-]+?)\s*-\s*([^-]+?)\s*$")


def parse_window(text: str) -> tuple[float, float]:
    """``START-END`` as durations from the traffic's start (``6h45m-7h30m``, ``0-600s``):
    seconds. Raises ``ValueError`` saying what is wrong."""
    found = _WINDOW.match(text)
    if found is None:
        raise ValueError(f"--window {text!r}: give START-END, e.g. 6h45m-7h30m or 0-600s")
    try:
        begin, end = (parse_duration(part) for part in found.groups())
    except ValueError as exc:
        raise ValueError(f"--window {text!r}: {exc}") from None
    if not end > begin:
        raise ValueError(f"--window {text!r}: the end must come after the start")
    return begin, end


def windowed(
    traffic: Traffic, window: tuple[float, float] | None, only: set[str] | None = None
) -> Traffic:
    """``traffic``, cut to ``window`` (seconds from its start) and to the domains ``only``
    names, where given."""
    if window is None and not only:
        return traffic
    begin, end = window if window is not None else (0.0, traffic.duration_s)
    return TrafficWindow(traffic, begin, end, only or None)


TRANSIT_WALL_S: Final = (0.002, 0.006)
"""A replayed request's time from the engine's decision to the mock server, one way, in wall
seconds: median and 95th percentile. Assumed, from what was measured on this 2-core machine: a
2,000-token call through the runtime to the mock on loopback, with no modelled latency, takes
7.5 ms median there and back, tokenizing (before the decision) included."""


def replay_transit(speed: float) -> Transit:
    """The time in transit of a replay at ``speed``, in model seconds (the wall time scaled)."""
    median, p95 = TRANSIT_WALL_S
    return Transit(median * speed, p95 * speed)


def predict(
    policy: Policy, traffic: Traffic, settings: ReplaySettings, records: Path
) -> tuple[int, bool]:
    """Simulate ``traffic`` through ``policy`` as the replay will send it (its seed, its
    prompts' characters per token, its requests' time in transit at its speed) and write the
    simulator's records to ``records``; the number of records, and whether Ctrl-C cut the
    simulation short."""
    ratios = {domain: settings.ratio(domain) for domain in traffic.domains()}
    with RecordWriter(records) as writer:
        result = run_once(
            policy,
            traffic,
            settings.seed,
            on_record=writer.write,
            chars_per_token=ratios,
            transit=replay_transit(settings.speed),
        )
        return writer.count, result.partial


def _unreachable(url: str) -> str:
    """Why nothing answers a TCP connection at ``url``'s host and port ("" if something does)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http:// or https:// URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=2.0):
            return ""
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def replay_command(
    policy: Policy,
    traffic: Traffic,
    url: str,
    ledger: Path,
    settings: ReplaySettings,
    *,
    env_file: Path | None = None,
    predicted: Path | None = None,
    console: Console | None = None,
) -> int:
    """Replay with a progress bar; with ``predicted``, first write the simulator's records of
    the very same arrivals there. The exit status: 0, or 130 when stopped by Ctrl-C (the
    ledger keeps every call that ended)."""
    console = console or Console(stderr=True)
    try:
        environ = environment(env_file)
        KeyRing.from_policy(policy, environ)
    except (MissingKeysError, OSError, ValueError) as exc:  # the keys, or the .env file
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_INVALID
    unreachable = _unreachable(url)
    if unreachable:
        print(
            f"replay: cannot reach {url} ({unreachable}): start the provider there first, "
            "e.g. `keypolicy mock-server --policy POLICY --speed SPEED`",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if predicted is not None:
        count, partial = predict(policy, traffic, settings, predicted)
        console.print(f"predicted: {count:,} simulated requests -> {predicted}")
        if partial:
            console.print("stopped while simulating: nothing was replayed")
            return EXIT_INTERRUPTED
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(traffic.name, total=traffic.duration_s, status="")

        def shown(p: ReplayProgress) -> None:
            bar.update(
                task,
                completed=p.model_s,
                status=f"{p.sent:,} sent, {p.open:,} open, late {p.late_s * 1000:.0f} ms",
            )

        result = Replay(
            policy, traffic, url, ledger, settings, environ=environ, on_progress=shown
        ).run()
    failures = ", ".join(f"{name} {n:,}" for name, n in sorted(result.failures.items()))
    console.print(
        f"{result.ended:,} of {result.sent:,} calls ended in {result.wall_s:.1f} s "
        f"({result.sync_calls:,} from threads, {result.async_calls:,} from asyncio tasks"
        + (f", {result.deferred_jobs:,} as deferred jobs" if result.deferred_jobs else "")
        + f"); the latest call was sent {result.late_s * 1000:.0f} ms after its time"
        + (f"; refused or failed: {failures}" if failures else "")
        + f"\nledger: {ledger}"
    )
    if result.partial:
        console.print("stopped: the ledger holds the calls that ended (partial)")
        return EXIT_INTERRUPTED
    return 0


def fidelity_command(
    predicted: Path, observed: Path, json_out: Path | None, console: Console | None = None
) -> int:
    """Compare, print the table, write the JSON; 2 on input that cannot be read."""
    console = console or Console()
    try:
        comparison = compare(read_figures(predicted), read_figures(observed))
    except FidelityInputError as exc:
        print(f"fidelity: {exc}", file=sys.stderr)
        return EXIT_INVALID
    show(comparison, console, f"predicted ({predicted.name}) vs observed ({observed.name})")
    if json_out is not None:
        data = comparison.as_dict() | {"predicted": str(predicted), "observed": str(observed)}
        temporary = json_out.with_name(json_out.name + ".partial")
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        temporary.replace(json_out)  # never half-written
    return 0
