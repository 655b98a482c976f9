"""Peak memory of a long replay: millions of requests through the simulator, records to disk.

The issue's goal: a 10-million-request replay with records streamed to disk stays under 1 GB.
The traffic is the clinic weekday (``simulations/clinic-day.yaml``, about 106,000 requests a
day) repeated over as many days as it takes, through ``policies/clinic-merged.yaml`` without its
budgets (so that every request is served rather than refused once a month's money is spent).
Every request is written to a CSV file of usage records in a temporary folder, and the run ends
with the summary and the per-minute series, as ``keypolicy simulate`` does.

Prints the resident memory as it goes and the peak at the end, and writes
``benchmarks/results/sim_memory.json``.

    .venv/bin/python benchmarks/sim_memory.py [--requests 10000000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from keypolicy.policy import load_policy
from keypolicy.records import RecordWriter
from keypolicy.sim.driver import Simulation
from keypolicy.sim.traffic import load_traffic

ROOT = Path(__file__).resolve().parents[1]
PER_DAY = 106_000  # requests in one clinic day, near enough to size the run


def _rss_mb() -> float:
    """Resident memory now (MB), from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_mb() -> float:
    """Peak resident memory so far (MB); Linux reports ru_maxrss in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def main() -> None:
    """Run the replay and report its memory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000_000, help="requests to replay")
    args = parser.parse_args()
    days = math.ceil(args.requests / PER_DAY * 1.02)
    with tempfile.TemporaryDirectory(prefix="keypolicy-memory-") as tmp:
        folder = Path(tmp)
        profile = (ROOT / "simulations" / "clinic-day.yaml").read_text(encoding="utf-8")
        assert "\nduration: 24h" in profile
        (folder / "long.yaml").write_text(
            profile.replace("\nduration: 24h", f"\nduration: {days * 24}h"), encoding="utf-8"
        )
        (folder / "policy.yaml").write_text(
            f"version: 1\nname: clinic-merged-no-budgets\n"
            f"extends: {ROOT / 'policies' / 'clinic-merged.yaml'}\nbudgets: null\n",
            encoding="utf-8",
        )
        policy = load_policy(folder / "policy.yaml").policy
        traffic = load_traffic(folder / "long.yaml")
        arrivals = islice(traffic.arrivals(0), args.requests)
        samples: list[dict[str, float]] = []
        begin = time.perf_counter()
        base = _rss_mb()
        print(
            f"before the run: {base:,.0f} MB resident; replaying {args.requests:,} requests "
            f"over up to {days} days"
        )
        with RecordWriter(folder / "records.csv") as writer:
            every = max(args.requests // 20, 1)

            def on_record(record: Any) -> None:
                writer.write(record)
                if writer.count % every == 0:
                    sample = {
                        "records": writer.count,
                        "seconds": time.perf_counter() - begin,
                        "rss_mb": _rss_mb(),
                    }
                    samples.append(sample)
                    print(
                        f"{writer.count:>12,} records  {sample['seconds']:7.0f} s  "
                        f"{sample['rss_mb']:7,.0f} MB resident",
                        flush=True,
                    )

            sim = Simulation(policy, arrivals, traffic.start.timestamp(), 0, on_record=on_record)
            metrics = sim.run()
            summary = metrics.summary()
            metrics.series()  # as simulate does (left out past a month of minutes)
        elapsed = time.perf_counter() - begin
        size = (folder / "records.csv").stat().st_size if (folder / "records.csv").exists() else 0
    result = {
        "requests": summary["totals"]["requests"],
        "minutes": metrics.minutes,
        "seconds": elapsed,
        "requests_per_s": summary["totals"]["requests"] / elapsed,
        "records_csv_bytes": size,
        "rss_before_mb": base,
        "peak_rss_mb": _peak_mb(),
        "goal_mb": 1000,
        "samples": samples,
    }
    print(
        f"{result['requests']:,} requests in {elapsed:,.0f} s "
        f"({result['requests_per_s']:,.0f}/s); records {size / 1e9:.2f} GB on disk; "
        f"peak resident memory {result['peak_rss_mb']:,.0f} MB (goal: under 1,000 MB)"
    )
    out = ROOT / "benchmarks" / "results" / "sim_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
