"""Memory and time of a sparse trace: a replay costs what its requests cost, not its span.

Three traces of the same 1,000 requests, replayed with ``keypolicy simulate`` in a process of
their own (through ``policies/clinic-merged.yaml``, domain chat, times in epoch seconds):

- dense: the 1,000 requests one second apart (17 minutes);
- sparse: the same requests spread evenly over ten years (a gap of three and a half days
  between two requests);
- gap: 999 requests one second apart, then one ten years later.

Side by side in one run, so that a noisy machine moves all three alike, it prints each
process's peak resident memory and wall time and their ratios to the dense trace. The goal of
issue 14: the sparse and gap traces take no more memory than the dense one (ratio about 1) and
neither allocates gigabytes nor hangs. Writes ``benchmarks/results/sparse_trace.json``.

    .venv/bin/python benchmarks/sparse_trace.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_600_000_000
TEN_YEARS = 10 * 365 * 86_400
REQUESTS = 1_000


def _times(kind: str) -> list[int]:
    if kind == "dense":
        return [T0 + i for i in range(REQUESTS)]
    if kind == "sparse":
        return [T0 + i * (TEN_YEARS // (REQUESTS - 1)) for i in range(REQUESTS)]
    return [T0 + i for i in range(REQUESTS - 1)] + [T0 + TEN_YEARS]


def _replay(trace: Path, out: Path) -> tuple[float, float]:
    """Peak resident memory (MB) and wall seconds of one ``keypolicy simulate``."""
    policy = ROOT / "policies" / "clinic-merged.yaml"
    command = [
        sys.executable, "-m", "keypolicy", "simulate", str(policy), "--trace", str(trace),
        "--domain", "chat", "--time-unit", "seconds", "--json", str(out),
    ]  # fmt: skip
    begin = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - begin
    if os.waitstatus_to_exitcode(status) != 0:
        assert process.stderr is not None
        raise SystemExit(f"{trace.name}: simulate failed:\n{process.stderr.read().decode()}")
    return usage.ru_maxrss / 1024, elapsed  # Linux: KiB


def main() -> None:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="keypolicy-sparse-") as tmp:
        for kind in ("dense", "sparse", "gap"):
            trace = Path(tmp) / f"{kind}.csv"
            rows = "".join(f"{t},800,150\n" for t in _times(kind))
            trace.write_text("timestamp,prompt_tokens,completion_tokens\n" + rows)
            peak, seconds = _replay(trace, Path(tmp) / f"{kind}.json")
            span = json.loads((Path(tmp) / f"{kind}.json").read_text())["about"]["duration_s"]
            results[kind] = {"span_days": span / 86_400, "peak_mb": peak, "seconds": seconds}
    dense = results["dense"]
    print(f"{'trace':8} {'span':>12} {'peak memory':>12} {'ratio':>6} {'time':>8} {'ratio':>6}")
    for kind, r in results.items():
        r["memory_ratio"] = r["peak_mb"] / dense["peak_mb"]
        r["time_ratio"] = r["seconds"] / dense["seconds"]
        print(
            f"{kind:8} {r['span_days']:>8,.1f} days {r['peak_mb']:>9,.0f} MB "
            f"{r['memory_ratio']:>6.2f} {r['seconds']:>6.1f} s {r['time_ratio']:>6.2f}"
        )
    worst = max(results["sparse"]["memory_ratio"], results["gap"]["memory_ratio"])
    print(f"sparse_trace memory_ratio={worst:.2f} (goal: about 1, under 1.25)")
    out = ROOT / "benchmarks" / "results" / "sparse_trace.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
