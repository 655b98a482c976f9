"""The README's "In your service" example runs as written against the mock server, and the
ledger it writes answers `keypolicy usage` and `keypolicy report`."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

from keypolicy.mock import MockOptions, MockServer, create_app
from keypolicy.runtime.secrets import read_env_file
from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]


def test_the_first_call_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "Runtime" in b]
    for name, value in read_env_file(ROOT / "policies" / "clinic-demo.env").items():
        monkeypatch.setenv(name, value)
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    monkeypatch.chdir(tmp_path)
    app = create_app("policies/clinic-merged.yaml", options=MockOptions(latency=False))
    out = io.StringIO()
    with MockServer(app) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {"__name__": "first_call"})
    printed = out.getvalue()
    assert re.search(r"diagnosis: \d+ tokens", printed), printed
    assert "chat: 20 replies" in printed
    assert "refused: model_not_allowed" in printed

    usage = run_keypolicy("usage", "usage.sqlite", "--by", "key")
    assert usage.returncode == 0, usage.stderr
    assert "chat" in usage.stdout
    assert "diagnosis" in usage.stdout
    report = run_keypolicy(
        "report", "usage.sqlite", "--policy", "policies/clinic-merged.yaml", "--out", "u.html"
    )
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "u.html").read_text()
    assert "<svg" in html
    for secret in read_env_file(ROOT / "policies" / "clinic-demo.env").values():
        assert secret not in html
        assert secret not in usage.stdout + usage.stderr + report.stdout + report.stderr
    assert os.path.getsize("usage.sqlite") > 0
