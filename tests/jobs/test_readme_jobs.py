"""The README's jobs example runs as written against the mock server, on the clinic's merged
policy: the financial job goes through the Batch API and comes back done."""

from __future__ import annotations

import contextlib
import io
import re
import threading
from pathlib import Path

import pytest

from keypolicy.ledger import read_ledger
from keypolicy.mock import MockOptions, MockServer, ScaledClock, create_app
from keypolicy.runtime import FakeClock, Runtime
from keypolicy.runtime.secrets import read_env_file
from tests.jobs.conftest import FAST, START

ROOT = Path(__file__).parents[2]


def test_readme_jobs_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "rt.defer(" in b]
    for name, value in read_env_file(ROOT / "policies/clinic-demo.env").items():
        monkeypatch.setenv(name, value)
    policy = ROOT / "policies/clinic-merged.yaml"
    clock = FakeClock(START)
    mock_clock = ScaledClock(1.0, origin=START, monotonic=clock.now)
    app = create_app(policy, options=MockOptions(latency=False, batch_delay=3600), clock=mock_clock)
    done = threading.Event()
    with MockServer(app) as server:
        rt = Runtime.from_file(
            policy,
            ledger=tmp_path / "usage.sqlite",
            base_url=server.url + "/v1",
            clock=clock,
            job_settings=FAST,
        )

        def time_passes() -> None:  # a minute of fake time per look of the worker
            while not done.is_set():
                worker = rt._worker
                if worker is not None and worker.looks >= 1:
                    seen = worker.looks
                    while worker.looks < seen + 2 and not done.is_set():
                        done.wait(0.001)
                    clock.advance(60)
                done.wait(0.001)

        mover = threading.Thread(target=time_passes, daemon=True)
        mover.start()
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block, "README.md", "exec"), {"rt": rt})
        finally:
            done.set()
            mover.join(5)
            rt.close()
    printed = out.getvalue()
    assert printed.startswith("done "), printed
    ledger = read_ledger(tmp_path / "usage.sqlite")
    assert list(ledger["domain"]) == ["financial"]
    assert bool(ledger["batch"].iloc[0])
