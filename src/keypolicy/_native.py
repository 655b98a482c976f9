"""The hot modules compiled with mypyc, used only while they match their sources.

The simulator spends its time in the decision core, the store, the provider model, the driver,
the metrics and the record writer. :func:`build` (run by ``make``) compiles exactly those
modules in place with mypyc, which comes with mypy, and writes a manifest of the
sources' hashes. At import, :func:`guard` (called first thing by ``keypolicy/__init__.py``)
checks the manifest. Python prefers a compiled module to its ``.py``, so when any source has
changed since the build, or there is no manifest, or ``KEYPOLICY_PURE`` is set, a finder makes
every one of these modules load from its source instead. All or none: a compiled module never
runs beside an edited source it was compiled against.

The compiled build makes the same decisions (the whole test suite runs against both builds);
it is only faster.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED", "build", "guard", "is_compiled"]

COMPILED = (
    "keypolicy.core.actions",
    "keypolicy.core.admission",
    "keypolicy.core.budgets",
    "keypolicy.core.calendar",
    "keypolicy.core.config",
    "keypolicy.core.engine",
    "keypolicy.core.events",
    "keypolicy.core.headers",
    "keypolicy.core.pricing",
    "keypolicy.core.request",
    "keypolicy.core.retry",
    "keypolicy.core.selection",
    "keypolicy.core.store",
    "keypolicy.state.memory",
    "keypolicy.upstream.buckets",
    "keypolicy.upstream.caching",
    "keypolicy.upstream.durations",
    "keypolicy.upstream.errors",
    "keypolicy.upstream.faults",
    "keypolicy.upstream.latency",
    "keypolicy.upstream.limits",
    "keypolicy.upstream.outcome",
    "keypolicy.upstream.provider",
    "keypolicy.upstream.requests",
    "keypolicy.upstream.settings",
    "keypolicy.sim.arrival",
    "keypolicy.sim.driver",
    "keypolicy.metrics",
    "keypolicy.records",
)
"""The modules compiled, by name (package ``__init__`` files stay plain Python)."""

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # the folder holding the keypolicy package (src/)
MANIFEST = PACKAGE / "_compiled.json"


def _source(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


def _digest(name: str) -> str:
    return hashlib.sha256(_source(name).read_bytes()).hexdigest()


def _fresh() -> bool:
    """Whether the manifest exists and every source still has the hash it was compiled from."""
    try:
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        modules = manifest["modules"]
        return manifest.get("python") == sys.implementation.cache_tag and all(
            modules.get(name) == _digest(name) for name in COMPILED
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the compiled modules' names from their ``.py`` files."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def guard() -> None:
    """Use the compiled modules only if they are fresh (and ``KEYPOLICY_PURE`` is not set)."""
    pure = os.environ.get("KEYPOLICY_PURE") or not _fresh()
    if pure and not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def is_compiled() -> bool:
    """Whether the decision core running in this process is the compiled one."""
    from keypolicy.core import engine  # noqa: PLC0415 - after the guard has decided

    return not (engine.__file__ or "").endswith(".py")


def _clean() -> None:
    """Remove compiled files and the manifest (so nothing half-built is ever picked up)."""
    MANIFEST.unlink(missing_ok=True)
    for name in COMPILED:
        for found in _source(name).parent.glob(f"{name.rsplit('.', 1)[1]}.*.so"):
            found.unlink()
    for found in ROOT.glob("*__mypyc.*.so"):
        found.unlink()


def build() -> int:
    """Compile :data:`COMPILED` in place; write the manifest only if it all worked. 0 or 1."""
    _clean()
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        print("keypolicy: no C compiler: the pure-Python build will be used", file=sys.stderr)
        return 1
    digests = {name: _digest(name) for name in COMPILED}
    files = [str(_source(name).relative_to(ROOT)) for name in COMPILED]
    work = ROOT.parent / "build" / "mypyc"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MYPYC_OPT_LEVEL": os.environ.get("MYPYC_OPT_LEVEL", "3")}
    done = subprocess.run(  # noqa: S603 - our interpreter, our own files
        [sys.executable, "-m", "mypyc", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (work / "mypyc.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # mypyc's C files, written beside src
    if done.returncode != 0:
        _clean()
        print(
            f"keypolicy: compiling with mypyc failed (see {work / 'mypyc.log'}): "
            "the pure-Python build will be used",
            file=sys.stderr,
        )
        return 1
    if digests != {name: _digest(name) for name in COMPILED}:
        _clean()
        print("keypolicy: sources changed while compiling: run it again", file=sys.stderr)
        return 1
    manifest = {"python": sys.implementation.cache_tag, "modules": digests}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"keypolicy: compiled {len(COMPILED)} modules with mypyc", file=sys.stderr)
    return 0
