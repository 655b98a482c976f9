"""Does the simulator predict the runtime? The same traffic, simulated and replayed live.

For each scenario and each setting of the provider's uncertain accounting rules, the arrivals
(one seed) are simulated (``keypolicy.sim.run.run_once``, records) and replayed at ``speed``
times real time through the live runtime (real ``openai`` clients, threads and asyncio tasks)
against ``keypolicy mock-server`` run at the same speed in a process of its own; the runtime's
ledger is compared with the simulator's records (``keypolicy.fidelity.compare``).

Scenarios (issue 17):

- clinic-merged: the clinic day (``simulations/clinic-day.yaml``) from 06:00 to 07:30 (the
  x-ray worklist run at 07:00) under ``policies/clinic-merged.yaml`` with the clinical project
  given 600,000 gpt-4o TPM instead of 800,000, so that 5 to 20% of the requests meet a limit
  (the shipped policy absorbs the burst: none does);
- clinic-separate: the same window under ``policies/clinic-separate.yaml`` as shipped;
- azure: the first ten minutes of the Azure traces as two domains
  (``simulations/azure-traces.yaml``, ``policies/azure-two-domains.yaml``).

``financial`` (``defer: batch``) is left out of the clinic: its batches take hours of model time
(median 1 h, p95 8 h), more than a benchmark of minutes can wait for. ``scheduling`` in
clinic-separate is ``defer: queue`` and is replayed through its client, as the simulator drives it.

Settings: the policy's own accounting, then each rule flipped once (``refund_unused``,
``count_failed``, ``quantum_requests``, ``quantum_tokens``), given alike to the mock
(``--assume``) and to the simulated provider; the engine keeps assuming what the policy says, as
in production, so the flipped rules are where upstream 429s appear.

Prints each comparison's table, writes ``benchmarks/results/fidelity.json``, and ends with:
``fidelity cost_rel_err=... upstream_429_rel_err=... deferred_rel_err=... wait_p95_rel_err=...``
(the worst over every scenario and setting; see ``keypolicy.fidelity.compare`` for the floors).
About five minutes with ``--quick`` (the policy's own rules only: one run per scenario), a
quarter of an hour for every setting, on this 2-core machine.

    .venv/bin/python benchmarks/fidelity.py [--quick] [--speed 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from keypolicy.fidelity import Replay, ReplaySettings, TrafficWindow, compare, fidelity_line
from keypolicy.fidelity.commands import parse_window, replay_transit
from keypolicy.fidelity.compare import Comparison, figures_from_records, read_figures
from keypolicy.fidelity.table import show
from keypolicy.policy import load_policy
from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.sim.run import run_once
from keypolicy.sim.traffic import Traffic, load_traffic
from keypolicy.upstream import ACCOUNTING_RULES, Accounting

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fidelity.json"
SEED = 1

TIGHT_MERGED = """\
version: 1
extends: {base}
name: clinic-merged-tight
description: clinic-merged with 600,000 gpt-4o TPM for the clinical pool (5-20% meet a limit).
projects:
  clinical:
    models:
      gpt-4o: {{rpm: 5_000, tpm: 600_000}}
"""


@dataclass(frozen=True)
class Scenario:
    """A policy file, traffic, and the speed its replay runs at (model seconds per second)."""

    name: str
    policy: Path
    traffic: Traffic
    speed: float


def scenarios(
    folder: Path, speed: float, morning_s: tuple[float, float] = (6 * 3600.0, 7.5 * 3600.0)
) -> list[Scenario]:
    """The three scenarios of issue 17 (the clinic's from ``morning_s``, seconds after
    midnight); the tight policy is written into ``folder``."""
    tight = folder / "clinic-merged-tight.yaml"
    tight.write_text(TIGHT_MERGED.format(base=ROOT / "policies" / "clinic-merged.yaml"))
    clinic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    # financial is `defer: batch`: its batches take an hour or more of model time (the sim's and
    # the mock's log-normal, median 1 h, p95 8 h), longer than this benchmark may run.
    kept = clinic.domains() - {"financial"}
    morning = TrafficWindow(clinic, *morning_s, kept)
    azure = TrafficWindow(load_traffic(ROOT / "simulations" / "azure-traces.yaml"), 0.0, 600.0)
    return [
        Scenario("clinic-merged", tight, morning, speed),
        Scenario("clinic-separate", ROOT / "policies" / "clinic-separate.yaml", morning, speed),
        # The Azure hour asks eight requests a second: at the clinic's speed that is more calls
        # a second than two shared cores make on time.
        Scenario("azure", ROOT / "policies" / "azure-two-domains.yaml", azure, speed / 6),
    ]


def settings(policy: Policy) -> list[tuple[str, Accounting]]:
    """The policy's own accounting, then each rule flipped once."""
    own = Accounting.from_policy(policy)
    out = [("policy's own", own)]
    for rule in ACCOUNTING_RULES:
        value = getattr(own, rule)
        if isinstance(value, bool):
            flipped: bool | float | None = not value
        else:
            flipped = None if value else 1.0
        out.append((f"{rule}={flipped}", own.with_rule(rule, flipped)))
    return out


def _assume(rule_values: Accounting, own: Accounting) -> list[str]:
    """The mock's ``--assume`` options for the rules that differ from the policy's."""
    specs = []
    for rule in ACCOUNTING_RULES:
        value = getattr(rule_values, rule)
        if value != getattr(own, rule):
            text = (
                str(value).lower() if isinstance(value, bool) else f"{value}s" if value else "none"
            )
            specs.append(f"{rule}={text}")
    return specs


class MockProcess:
    """``keypolicy mock-server`` for a policy, in a process of its own, on a free port."""

    def __init__(self, policy: Path, speed: float, seed: int, environ: dict[str, str]) -> None:
        self.policy, self.speed, self.seed, self.environ = policy, speed, seed, environ
        self.assume: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, assume: list[str]) -> str:
        command = [
            sys.executable, "-m", "keypolicy", "mock-server", "--policy", str(self.policy),
            "--port", "0", "--speed", str(self.speed), "--seed", str(self.seed),
            "--log-level", "warning",
        ]  # fmt: skip
        for spec in assume:
            command += ["--assume", spec]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **self.environ},
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"mock server on (http://\S+?)/v1", line)
            if found:
                self.url = found.group(1)
                return self.url
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the mock server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


@dataclass(frozen=True)
class Text:
    """How long prompt text is per exact token, and whether the simulator is told; whether the
    simulator models requests' time in transit (``keypolicy.sim.transit``)."""

    chars_per_token: float
    modelled: bool
    transit: bool = True


def run_case(
    scenario: Scenario,
    setting: str,
    rules: Accounting,
    text: Text,
    folder: Path,
    console: Console,
) -> tuple[Comparison, dict[str, Any]]:
    """Simulate and replay one scenario under one setting; the comparison and its facts."""
    policy = load_policy(scenario.policy).policy
    own = Accounting.from_policy(policy)
    predicted: list[UsageRecord] = []
    ratios = dict.fromkeys(scenario.traffic.domains(), text.chars_per_token)
    run_once(
        policy,
        scenario.traffic,
        SEED,
        on_record=predicted.append,
        accounting=rules,
        chars_per_token=ratios if text.modelled else None,
        transit=replay_transit(scenario.speed) if text.transit else None,
    )
    environ = {
        key.env: f"sk-canary-{name}-{secrets.token_hex(8)}" for name, key in policy.keys.items()
    }
    ledger = folder / f"{scenario.name}-{len(list(folder.iterdir()))}.jsonl"
    mock = MockProcess(scenario.policy, scenario.speed, SEED, environ)
    url = mock.start(_assume(rules, own))
    try:
        progress = Replay(
            policy,
            scenario.traffic,
            url,
            ledger,
            ReplaySettings(speed=scenario.speed, seed=SEED, chars_per_token=ratios),
            environ=environ,
        ).run()
    finally:
        mock.stop()
    if progress.partial:
        raise KeyboardInterrupt
    comparison = compare(figures_from_records(predicted), read_figures(ledger))
    show(comparison, console, f"{scenario.name}, {setting}: predicted vs observed")
    met = sum(1 for r in predicted if r.wait_s > 0 or r.attempts != 1 or r.outcome != "ok")
    facts = {
        "scenario": scenario.name,
        "setting": setting,
        "chars_per_token": text.chars_per_token,
        "estimate_modelled": text.modelled,
        "transit_modelled": text.transit,
        "speed": scenario.speed,
        "requests": len(predicted),
        "met_a_limit_predicted": round(met / max(len(predicted), 1), 4),
        "wall_s": round(progress.wall_s, 1),
        "late_s": round(progress.late_s, 3),
        "sync_calls": progress.sync_calls,
        "async_calls": progress.async_calls,
        "comparison": comparison.as_dict(),
    }
    console.print(
        f"{len(predicted):,} requests ({met / max(len(predicted), 1):.0%} meet a limit in the "
        f"prediction), replayed in {progress.wall_s:.0f} s at x{scenario.speed:g}, the latest "
        f"sent {progress.late_s * 1000:.0f} ms late\n"
    )
    return comparison, facts


def _stop_on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # a kill stops as Ctrl-C does: the mock server is stopped too


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_term)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the policy's own rules only")
    parser.add_argument("--speed", type=float, default=60.0, help="the clinic's replay speed")
    parser.add_argument(
        "--chars-per-token",
        type=float,
        default=5.5,
        help="characters of prompt text per exact token (5.5: the limiter's estimate 37%% above "
        "the exact count, as issue 17 measured on one prompt; 4: no difference)",
    )
    parser.add_argument(
        "--unmodelled",
        action="store_true",
        help="do not tell the simulator the ratio (the gap before it modelled the estimate)",
    )
    parser.add_argument(
        "--no-transit",
        action="store_true",
        help="do not model requests' time in transit in the simulator (the gap before it did)",
    )
    parser.add_argument("--scenario", help="only this scenario (clinic-merged, ...)")
    parser.add_argument(
        "--clinic-window", default="6h-7h30m", help="the clinic's span (from midnight)"
    )
    parser.add_argument("--setting", help="only this setting (quantum_tokens=1.0, ...)")
    args = parser.parse_args()
    text = Text(args.chars_per_token, not args.unmodelled, not args.no_transit)
    console = Console(width=110)
    comparisons: list[Comparison] = []
    facts: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keypolicy-fidelity-") as tmp:
        folder = Path(tmp)
        cases = [
            (scenario, name, rules)
            for scenario in scenarios(folder, args.speed, parse_window(args.clinic_window))
            for name, rules in settings(load_policy(scenario.policy).policy)[
                : 1 if args.quick else None
            ]
            if args.scenario in (None, scenario.name) and args.setting in (None, name)
        ]
        began = time.monotonic()
        try:
            for scenario, name, rules in cases:
                comparison, fact = run_case(scenario, name, rules, text, folder, console)
                comparisons.append(comparison)
                facts.append(fact)
        except KeyboardInterrupt:
            console.print("interrupted: the figures below are of the cases that ran")
    RESULTS.parent.mkdir(exist_ok=True)
    print(fidelity_line(comparisons, totals=False).replace("fidelity ", "worst of any domain: "))
    line = fidelity_line(comparisons)
    whole = args.scenario is None and args.setting is None and args.clinic_window == "6h-7h30m"
    name = (
        ("fidelity" if whole else "fidelity-part")
        + ("" if text.modelled else "-unmodelled")
        + ("" if text.transit else "-no-transit")
    )
    results = RESULTS.with_name(f"{name}.json")
    results.write_text(
        json.dumps(
            {"cases": facts, "line": line, "wall_s": round(time.monotonic() - began, 1)}, indent=2
        )
        + "\n"
    )
    print(line)


if __name__ == "__main__":
    main()
