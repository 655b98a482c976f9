"""Admit-and-settle pairs per second through the decision core, on one core.

The clinic policy (policies/clinic-merged.yaml: six domains, three pools, budgets on), fed a
steady stream of requests spread over its domains on a virtual clock:

- uncongested: 60 requests/s, well inside every limit: each request is admitted at once and
  settled 2 s later;
- congested: 20x that rate, so the clinical and chat limits bind and queues form; requests are
  still settled 2 s after they are sent, and time advances by the engine's own wake-ups.

Both runs happen side by side in this process. The headline figure counts the time spent inside
``engine.handle`` (the decisions); the figure "with this driver loop" adds building events and
keeping the settlement heap, which a real driver does its own way. Goal: at least 50,000 pairs
per second (20 µs a pair) uncongested. Prints the figures and writes
benchmarks/results/core_decisions.json.

    .venv/bin/python benchmarks/core_decisions.py [--requests N]
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import time
from pathlib import Path

from keypolicy.core import Advance, Engine, Event, Send, Settled, Submit
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ["diagnosis", "xray", "treatment", "chat", "chat", "scheduling"]
T0 = 1_795_000_000.0


def run(requests: int, rate: float) -> dict[str, float]:
    """Feed ``requests`` arrivals at ``rate`` per second; return counts and timings."""
    config = compile_policy(load_policy(ROOT / "policies" / "clinic-merged.yaml").policy)
    engine = Engine(config, MemoryStore(), seed=0)
    settles: list[tuple[float, str]] = []
    sent = completed = 0
    now = T0
    in_core = 0.0  # time spent inside engine.handle only: the decisions, not this loop
    clock = time.perf_counter
    start = clock()
    for i in range(requests):
        now = T0 + i / rate
        while settles and settles[0][0] <= now:
            at, rid = heapq.heappop(settles)
            event: Event = Settled(rid, at, 200, 80)
            t = clock()
            completed += len(engine.handle(event))
            in_core += clock() - t
        if engine.next_wake is not None and engine.next_wake <= now:
            t = clock()
            actions = engine.handle(Advance(now))
            in_core += clock() - t
            for action in actions:
                if isinstance(action, Send):
                    sent += 1
                    heapq.heappush(settles, (now + 2.0, action.request_id))
        event = Submit(
            f"r{i}", DOMAINS[i % len(DOMAINS)], now, prompt_tokens=200, max_output_tokens=100
        )
        t = clock()
        actions = engine.handle(event)
        in_core += clock() - t
        for action in actions:
            if isinstance(action, Send):
                sent += 1
                heapq.heappush(settles, (now + 2.0, action.request_id))
    elapsed = clock() - start
    return {
        "requests": requests,
        "rate_per_s": rate,
        "sent": sent,
        "settled": completed,
        "waiting_at_end": len(engine.waiting()),
        "seconds": elapsed,
        "core_seconds": in_core,
        "pairs_per_s": sent / in_core,
        "us_per_pair": in_core / max(sent, 1) * 1e6,
        "pairs_per_s_with_loop": sent / elapsed,
    }


def main() -> None:
    """Run both scenarios and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    run(2_000, 60.0)  # warm up imports and caches
    results = {
        "uncongested": run(args.requests, 60.0),
        "congested": run(args.requests, 1_200.0),
    }
    for name, r in results.items():
        print(
            f"{name:12s} {r['pairs_per_s']:>10,.0f} admit+settle pairs/s in the core "
            f"({r['us_per_pair']:.1f} µs a pair); {r['pairs_per_s_with_loop']:,.0f}/s with this "
            f"driver loop; {r['sent']:,} sent of {r['requests']:,}, "
            f"{r['waiting_at_end']:,} still queued"
        )
    goal = results["uncongested"]["pairs_per_s"] >= 50_000
    print(f"goal (>= 50,000 pairs/s uncongested): {'met' if goal else 'NOT met'}")
    out = ROOT / "benchmarks" / "results" / "core_decisions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), **results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
