"""The README's Python example runs as written and prints what it says."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "Engine(" in b
    ]
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    assert "Send(request_id='r1', key='diagnosis', project='clinical', model='gpt-4o'" in printed
    assert "Complete(request_id='r1'" in printed
    assert "cost_usd=0.0061" in printed
