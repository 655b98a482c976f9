"""``keypolicy jobs LEDGER`` (what is waiting, running, done... with ages and costs) and the
errors of ``keypolicy jobs`` and ``keypolicy worker``: exit 2, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from keypolicy.jobs.commands import jobs_rows, jobs_table
from keypolicy.mock import MockServer
from keypolicy.runtime import FakeClock, Runtime
from tests.commands import run_keypolicy
from tests.jobs.conftest import CANARIES, START, chat, wait_until


def test_the_jobs_table_shows_statuses_ages_and_costs(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    rt = runtime(mock())
    done = rt.defer("scheduling", "chat.completions", chat()).wait(20)
    expired = rt.defer("reminders", "chat.completions", chat()).wait(20)
    rt.close()
    waiting = runtime(jobs_worker=False).defer("financial", "chat.completions", chat())
    ledger = str(rt.ledger.path)
    rows = jobs_rows(ledger, None, None, START + 3 * 3600)
    assert [r["id"] for r in rows] == [done.id, expired.id, waiting.id]
    assert [r["status"] for r in rows] == ["done", "expired", "waiting"]
    assert rows[0]["age"] == 3 * 3600
    assert rows[0]["cost_usd"] == done.cost_usd > 0
    table = jobs_table(rows, "table")
    assert "3h" in table
    assert "deadline: its deferral windows" in table
    assert "3 jobs: 1 waiting, 0 running, 1 done, 0 failed, 1 expired" in table
    assert [r["id"] for r in jobs_rows(ledger, ["waiting"], None, START)] == [waiting.id]
    assert jobs_rows(ledger, None, "nightly", START) == []
    assert json.loads(jobs_table(rows, "json"))[0]["status"] == "done"
    assert jobs_table(rows, "csv").splitlines()[0].startswith("id,domain,mode,status,age")
    shown = run_keypolicy("jobs", ledger, "--status", "done", "--status", "expired")
    assert shown.returncode == 0, shown.stderr
    assert done.id in shown.stdout
    assert expired.id in shown.stdout
    assert waiting.id not in shown.stdout
    assert all(c not in shown.stdout + table for c in CANARIES)


def test_bad_input_exits_2_saying_what_to_do(tmp_path: Path, policy_path: Path) -> None:
    missing = run_keypolicy("jobs", tmp_path / "none.sqlite")
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    status = run_keypolicy("jobs", tmp_path / "none.sqlite", "--status", "finished")
    assert status.returncode == 2
    assert "one of waiting, running, done, failed, expired" in status.stderr
    no_keys = run_keypolicy("worker", policy_path, "--ledger", tmp_path / "u.sqlite")
    assert no_keys.returncode == 2
    assert "JOBS_TEST_KEY_A is not set" in no_keys.stderr
    assert "Traceback" not in no_keys.stderr
    bad_gather = run_keypolicy("worker", policy_path, "--gather", "soon")
    assert bad_gather.returncode == 2
    assert "--gather" in bad_gather.stderr


def test_ctrl_c_stops_the_worker_cleanly(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "keypolicy", "worker", str(policy_path)]
    command += ["--ledger", str(tmp_path / "usage.sqlite")]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=dict(os.environ), stdout=out, stderr=out)
    try:
        wait_until(lambda: "running the jobs of" in log.read_text(), "the worker to start", 60)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "keypolicy worker: stopped; 0 waiting, 0 running" in text
    assert "Traceback" not in text
