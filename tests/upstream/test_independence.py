"""The provider model judges the core, so it shares no code with it, and it reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import keypolicy

SOURCE = Path(keypolicy.__file__).parent


def imports(package: str) -> set[str]:
    """Every module imported anywhere in ``keypolicy.<package>``."""
    found = set()
    for path in (SOURCE / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


@pytest.mark.parametrize("package", ["upstream", "mock"])
def test_no_core_import(package: str) -> None:
    assert not {m for m in imports(package) if m.startswith("keypolicy.core")}


def test_model_reads_no_clock_and_does_no_io() -> None:
    banned = {"time", "asyncio", "simpy", "httpx", "httpx2", "openai", "starlette", "uvicorn"}
    assert not imports("upstream") & banned
