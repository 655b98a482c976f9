"""The core stays sans-I/O: no module under keypolicy.core imports a clock, I/O or pydantic.

ruff's banned-api rule (src/keypolicy/core/ruff.toml) holds the line in the editor; this test
holds it in CI whatever the linter configuration.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keypolicy.core

BANNED = {
    "time",
    "asyncio",
    "threading",
    "simpy",
    "redis",
    "httpx",
    "httpx2",
    "openai",
    "pydantic",
    "socket",
    "subprocess",
    "keypolicy.policy",
    "keypolicy.runtime",
    "keypolicy.sim",
    "keypolicy.mock",
    "keypolicy.upstream",
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_imports_nothing_impure() -> None:
    core = Path(keypolicy.core.__file__).parent
    bad = {}
    for path in sorted(core.glob("*.py")):
        names = {n for n in _imports(path) if any(n == b or n.startswith(b + ".") for b in BANNED)}
        if names:
            bad[path.name] = sorted(names)
    assert bad == {}


def test_core_never_reads_the_clock() -> None:
    core = Path(keypolicy.core.__file__).parent
    for path in core.glob("*.py"):
        text = path.read_text()
        assert "datetime.now(" not in text
        assert ".today(" not in text
