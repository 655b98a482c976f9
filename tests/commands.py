"""Running the ``keypolicy`` command as a user does: a real process, output captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_keypolicy(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m keypolicy ARGS``; never raises on a non-zero exit (tests check it)."""
    return subprocess.run(
        [sys.executable, "-m", "keypolicy", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
