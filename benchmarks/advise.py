"""The merge advisor on the clinic day (issue 18): time, runs, and the screen held to the
exhaustive search; then the speed-up of a Dask cluster from one worker to two.

1. ``keypolicy advise``'s search on ``policies/clinic-separate.yaml`` and
   ``simulations/clinic-day.yaml``: all 203 groupings of the six domains, seeds 0, 1, 2, with
   the screen, ``--jobs`` local processes (default 2). Wall time, candidates simulated in full,
   runs. Goal: at most 3 minutes on this 2-core machine.
2. The same search without the screen (every candidate simulated in full): its front must be
   the screened search's, candidate for candidate (and their scores number for number).
3. The headroom of the screened front (timed apart: it is not part of the goal's search).
4. The same batch of full runs (``--batch`` of them, default 8) on a Dask ``LocalCluster`` of
   one worker process, then of two (one thread each, on 127.0.0.1): the speed-up. Goal: 1.8.

Prints the figures and writes ``benchmarks/results/advise.json``. Which build runs (compiled or
plain Python) is printed first: the figures are for that build.

    .venv/bin/python benchmarks/advise.py                  # everything (about 15 minutes)
    .venv/bin/python benchmarks/advise.py --skip-exhaustive --skip-headroom
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

from keypolicy._native import build_info
from keypolicy.advise import Advice, Settings, advise
from keypolicy.advise.search import measured_run
from keypolicy.policy import load_policy
from keypolicy.sim.cluster import open_executor
from keypolicy.sim.traffic import load_traffic

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the worker processes)."""
    mine, theirs = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return mine.ru_utime + mine.ru_stime + theirs.ru_utime + theirs.ru_stime


def _search(jobs: int, *, screen: bool, headroom: bool) -> tuple[Advice, float, float]:
    """The search, its wall seconds and its CPU seconds (workers included: a shared machine
    stretches the wall time, much less the CPU time)."""
    policy = load_policy(ROOT / "policies" / "clinic-separate.yaml").policy
    traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    begin, cpu = time.perf_counter(), _cpu()
    with open_executor(jobs) as executor:
        advice = advise(
            policy, traffic, SEEDS, executor, Settings(screen=screen, headroom=headroom)
        )
    return advice, time.perf_counter() - begin, _cpu() - cpu


def _timed_run(policy: Any, traffic: Any, seed: int) -> tuple[int, float]:
    """One full run in a worker: the worker's process id and the run's CPU seconds."""
    begin = time.process_time()
    measured_run(policy, traffic, seed)
    return os.getpid(), time.process_time() - begin


def _speedup(batch: int) -> dict[str, Any]:
    from distributed import LocalCluster  # noqa: PLC0415 - the optional extra

    policy = load_policy(ROOT / "policies" / "clinic-merged.yaml").policy
    traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    seconds: dict[str, Any] = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            open_executor(cluster=cluster.scheduler_address) as executor,
        ):
            wait([executor.submit(_timed_run, policy, traffic, 99) for _ in range(2 * workers)])
            begin = time.perf_counter()  # workers warm: imports done, as in a long search
            done = [executor.submit(_timed_run, policy, traffic, s) for s in range(batch)]
            wait(done)
            took = time.perf_counter() - begin
            pids = [f.result()[0] for f in done]
            cpu = sum(f.result()[1] for f in done)
        seconds[f"{workers}_worker"] = took
        seconds[f"{workers}_worker_cpu"] = cpu
        seconds[f"{workers}_worker_runs_per_process"] = sorted(pids.count(p) for p in set(pids))
        print(
            f"  {workers} worker(s): {batch} runs in {took:.1f} s ({cpu:.1f} CPU s; runs per "
            f"worker process {seconds[f'{workers}_worker_runs_per_process']})"
        )
    seconds["speedup"] = seconds["1_worker"] / seconds["2_worker"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-exhaustive", action="store_true")
    parser.add_argument("--skip-headroom", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-search", action="store_true", help="only the cluster speed-up")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"keypolicy: {build_info()}; load average {load:.1f} on {os.cpu_count()} cores")
    results: dict[str, Any] = {"build": build_info(), "load_before": load, "seeds": SEEDS}

    if not args.skip_search:
        _searches(args, results)
    if not args.skip_cluster:
        print(f"Dask LocalCluster, {args.batch} full runs of clinic-merged:")
        results["cluster"] = _speedup(args.batch)
        print(f"  speed-up 1 -> 2 workers: {results['cluster']['speedup']:.2f} (goal 1.8)")
    results["load_after"] = os.getloadavg()[0]
    out = ROOT / "benchmarks" / "results" / "advise.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written: {out.relative_to(ROOT)}")


def _searches(args: argparse.Namespace, results: dict[str, Any]) -> None:
    screened, took, cpu = _search(args.jobs, screen=True, headroom=False)
    assert screened.screen is not None
    results["screened"] = {
        "seconds": round(took, 1),
        "cpu_seconds": round(cpu, 1),
        "candidates": len(screened.candidates),
        "parts_screened": screened.screen.pools,
        "simulated_in_full": screened.screen.simulated,
        "dropped": screened.screen.dropped,
        "runs": screened.runs,
        "front": [screened.candidates[i].label for i in screened.front],
        "margins": screened.screen.margins,
    }
    print(
        f"screened search: {took:.1f} s wall (goal 180 s), {cpu:.0f} CPU s, "
        f"{len(screened.candidates)} "
        f"groupings, {screened.screen.pools} parts screened, {screened.screen.simulated} "
        f"simulated in full, {screened.screen.dropped} dropped, {screened.runs} runs; "
        f"front of {len(screened.front)}: best {screened.best.label}"
    )
    if not args.skip_exhaustive:
        every, took, cpu = _search(args.jobs, screen=False, headroom=False)
        same = every.front == screened.front and all(
            every.scores[i] == screened.scores[i] for i in every.front
        )
        results["exhaustive"] = {
            "seconds": round(took, 1),
            "cpu_seconds": round(cpu, 1),
            "runs": every.runs,
            "front": [every.candidates[i].label for i in every.front],
            "same_front": same,
        }
        print(
            f"exhaustive search: {took:.1f} s wall, {cpu:.0f} CPU s, {every.runs} runs; "
            f"same front: {same}"
        )
    if not args.skip_headroom:
        begin = time.perf_counter()
        policy = load_policy(ROOT / "policies" / "clinic-separate.yaml").policy
        traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
        with open_executor(args.jobs) as executor:
            full = advise(policy, traffic, SEEDS, executor, Settings(headroom=True))
        took = time.perf_counter() - begin
        rooms = {full.candidates[i].label: full.headroom[i].describe() for i in full.front}
        results["with_headroom"] = {"seconds": round(took, 1), "runs": full.runs, "headroom": rooms}
        print(f"search with the front's headroom: {took:.1f} s wall, {full.runs} runs")
        for label, sentence in rooms.items():
            print(f"  {label}: {sentence}")


if __name__ == "__main__":
    sys.exit(main())
