"""``keypolicy worker`` and ``keypolicy jobs``: the logic behind the two commands (``cli.py``
holds only their options).

- :func:`run_worker`: a runtime that runs deferred jobs and nothing else, until Ctrl-C or
  SIGTERM; either stops it cleanly (jobs not sent wait for the next worker; calls in flight
  get ``drain_s`` to end; batches submitted stay in the queue's database).
- :func:`jobs_table`: what is waiting, running, done, failed or expired, with ages and costs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from keypolicy.core.pricing import format_usd
from keypolicy.jobs.model import STATUSES, JobRecord
from keypolicy.jobs.settings import JobSettings
from keypolicy.jobs.store import jobs_location, open_job_store
from keypolicy.ledger import ledger_location
from keypolicy.policy.units import format_duration

__all__ = ["COLUMNS", "jobs_rows", "jobs_table", "run_worker"]

COLUMNS: Final = ("id", "domain", "mode", "status", "age", "ran", "attempts", "cost_usd", "why")
"""The columns of ``keypolicy jobs``."""
PROGRESS_S: Final = 10.0
"""How often ``keypolicy worker`` says what the queue holds, if it changed (seconds)."""


def run_worker(
    policy: Path,
    *,
    ledger: str | None,
    base_url: str | None,
    env_file: Path | None,
    settings: JobSettings,
    say: Callable[[str], None],
) -> int:
    """Run the jobs of ``policy`` until Ctrl-C (exit 130) or SIGTERM (exit 0). Raises
    ``PolicyError``/``ValueError`` for what is wrong before it starts (nothing runs then)."""
    from keypolicy.runtime import Runtime  # noqa: PLC0415 - openai loads only for this command

    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("keypolicy.jobs").setLevel(logging.INFO)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    rt = Runtime.from_file(
        policy,
        ledger=ledger,
        base_url=base_url,
        env_file=env_file,
        jobs_worker=True,
        job_settings=settings,
    )
    try:
        say(f"keypolicy worker: running the jobs of {policy} from {rt.ledger.path}")
        shown, last = "", float("-inf")
        try:
            while not stop.wait(1.0):
                counts = _counts_of(rt._jobs_queue()[0].counts())
                if counts != shown and time.monotonic() - last >= PROGRESS_S:
                    say(f"keypolicy worker: {counts}")
                    shown, last = counts, time.monotonic()
        except KeyboardInterrupt:
            code = 130
        say("keypolicy worker: stopping (jobs not sent wait for the next worker)")
    finally:
        rt.close(drain_s=settings.drain_s)
        signal.signal(signal.SIGTERM, previous)
    store = open_job_store(rt.ledger.path)
    try:
        say(f"keypolicy worker: stopped; {_counts_of(store.counts())}")
    finally:
        store.close()
    return code


def _counts_of(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)


def jobs_rows(
    ledger: str, status: Sequence[str] | None, domain: str | None, now: float
) -> list[dict[str, Any]]:
    """The jobs of ``ledger``'s queue as rows (:data:`COLUMNS`), oldest first. ValueError for
    a ledger that is not there, or a status that does not exist."""
    for name in status or ():
        if name not in STATUSES:
            raise ValueError(f"--status {name!r}: a job's status is one of {', '.join(STATUSES)}")
    where = ledger_location(ledger)
    queue = jobs_location(where)
    if isinstance(queue, Path) and not queue.exists():
        raise ValueError(f"{queue}: no such file (give the ledger the runtime writes)")
    store = open_job_store(where)
    try:
        return [_row(job, now) for job in store.find(status, domain)]
    finally:
        store.close()


def _row(job: JobRecord, now: float) -> dict[str, Any]:
    ended = job.finished if job.finished is not None else now
    why = job.reason()
    if not why and job.batch_ref and not job.ended:
        why = f"in batch {job.batch_ref}"
    return {
        "id": job.id,
        "domain": job.domain,
        "mode": job.mode,
        "status": job.status,
        "age": max(now - job.created, 0.0),
        "ran": None if job.started is None else max(ended - job.started, 0.0),
        "attempts": job.attempts,
        "cost_usd": job.cost_usd,
        "why": why,
    }


def jobs_table(rows: list[dict[str, Any]], fmt: Literal["table", "csv", "json"]) -> str:
    """``rows`` (:func:`jobs_rows`) as a table for people, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    if not rows:
        return "no jobs"
    shown = [
        [
            r["id"],
            r["domain"],
            r["mode"],
            r["status"],
            _duration(r["age"]),
            "-" if r["ran"] is None else _duration(r["ran"]),
            str(r["attempts"]),
            format_usd(r["cost_usd"]) if r["cost_usd"] else "-",
            r["why"][:70],
        ]
        for r in rows
    ]
    header = ["id", "domain", "mode", "status", "age", "ran", "tries", "cost", "why"]
    widths = [max(len(h), *(len(row[i]) for row in shown)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in shown
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    total = sum(r["cost_usd"] for r in rows)
    lines.append(f"{len(rows)} jobs: {_counts_of(counts)}; cost {format_usd(total)}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return format_duration(round(seconds)) if seconds >= 1 else "0s"


def err(text: str) -> None:
    """A line on stderr."""
    print(text, file=sys.stderr, flush=True)
