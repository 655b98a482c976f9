"""The hot modules compiled with mypyc, used only while they match their sources.

The simulator spends its time in the decision core, the store, the provider model, the driver,
the metrics and the record writer. :func:`build` (run by ``make``) compiles exactly those
modules in place with mypyc, which comes with mypy, and writes a manifest of the
sources' hashes. A wheel gets the same: ``hatch_build.py`` (the build hook) loads this file on
its own, standard library only, and calls :func:`compile_tree` on a copy of the sources. At
import, :func:`guard` (called first thing by ``keypolicy/__init__.py``) checks the manifest.
Python prefers a compiled module to its ``.py``, so when any source has changed since the build,
or there is no manifest, or ``KEYPOLICY_PURE`` is set, a finder makes every one of these modules
load from its source instead. All or none: a compiled module never runs beside an edited source
it was compiled against. :func:`build_info` says which build runs (``keypolicy --version``).

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
from typing import Any

__all__ = ["COMPILED", "build", "build_info", "compile_tree", "guard", "is_compiled"]

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
    "keypolicy.core.validity",
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
    "keypolicy.upstream.validation",
    "keypolicy.sim.arrival",
    "keypolicy.sim.driver",
    "keypolicy.metrics",
    "keypolicy.records",
)
"""The modules compiled, by name (package ``__init__`` files stay plain Python)."""

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # the folder holding the keypolicy package (src/)
MANIFEST_NAME = "_compiled.json"
MANIFEST = PACKAGE / MANIFEST_NAME
NOT_COMPILED = "not_compiled"
"""The manifest's key for why a wheel was built without compiled modules (then it has none)."""


def _source(name: str, root: Path = ROOT) -> Path:
    return root.joinpath(*name.split(".")).with_suffix(".py")


def _digest(name: str, root: Path = ROOT) -> str:
    return hashlib.sha256(_source(name, root).read_bytes()).hexdigest()


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


def _loads_compiled(name: str) -> bool:
    """Whether module ``name`` loads (or has loaded) from a compiled file, as the guard decided."""
    module = sys.modules.get(name)
    if module is not None:
        return not (getattr(module, "__file__", None) or "").endswith(".py")
    spec = importlib.util.find_spec(name)  # through the guard's finder, without running the module
    return spec is not None and not (spec.origin or "").endswith(".py")


def _why_plain() -> str:
    """Why the modules of :data:`COMPILED` run as plain Python here, in a few words."""
    if os.environ.get("KEYPOLICY_PURE"):
        return "KEYPOLICY_PURE is set"
    try:
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        if not isinstance(manifest.get("modules"), dict):
            raise TypeError(manifest)
    except FileNotFoundError:
        return "no compiled build (make builds one; so does a wheel built where a C compiler is)"
    except (OSError, ValueError, TypeError, AttributeError):
        return f"unreadable build manifest {MANIFEST}"
    return _why_unused(manifest)


def _why_unused(manifest: dict[str, Any]) -> str:
    """Why a readable manifest's build is not used."""
    if manifest.get(NOT_COMPILED):
        return f"not built: {manifest[NOT_COMPILED]}"
    if manifest.get("python") != sys.implementation.cache_tag:
        return f"built for {manifest.get('python')}, running {sys.implementation.cache_tag}"
    changed = [name for name in COMPILED if manifest["modules"].get(name) != _digest(name)]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"sources changed since the build ({changed[0]}{more})"
    return "the compiled files are missing"


def build_info() -> str:
    """Which build runs in this process, e.g. ``compiled with mypyc: 29 modules``.

    Otherwise ``plain Python: `` and why (``KEYPOLICY_PURE`` set, not built, sources changed since
    the build, ...). ``keypolicy --version`` prints it.
    """
    compiled = sum(_loads_compiled(name) for name in COMPILED)
    if compiled == len(COMPILED):
        return f"compiled with mypyc: {compiled} modules"
    if compiled:
        return f"partly compiled with mypyc: {compiled} of {len(COMPILED)} modules (files missing)"
    return f"plain Python: {_why_plain()}"


def _clean() -> None:
    """Remove compiled files and the manifest (so nothing half-built is ever picked up).

    Every extension module in the package goes, not only those of :data:`COMPILED`: one left
    from a module since taken off the list would be imported in place of its source."""
    MANIFEST.unlink(missing_ok=True)
    for found in PACKAGE.rglob("*.so"):
        found.unlink()
    for found in ROOT.glob("*__mypyc.*.so"):
        found.unlink()


def _compiler() -> str | None:
    """Why nothing can be compiled here (no C compiler, no mypyc), or None."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler (cc or gcc)"
    if importlib.util.find_spec("mypyc") is None:
        return f"no mypyc (it comes with mypy) for {sys.executable}"
    return None


def compile_tree(root: Path, log: Path, options: Sequence[str] = ()) -> str | None:
    """Compile :data:`COMPILED`, found under ``root``, in place with mypyc; write the manifest.

    ``root`` holds the ``keypolicy`` package (``src/``, or a copy of it); the extension modules
    land beside their sources and mypyc's shared runtime module in ``root`` itself. ``options``
    go to mypy (``--config-file``). mypyc's output is written to ``log``. Returns None when every
    module compiled, else why not (and then no manifest is written: callers remove what is left).
    """
    unable = _compiler()
    if unable:
        return unable
    digests = {name: _digest(name, root) for name in COMPILED}
    files = [str(_source(name, root).relative_to(root)) for name in COMPILED]
    env = {**os.environ, "MYPYC_OPT_LEVEL": os.environ.get("MYPYC_OPT_LEVEL", "3")}
    done = subprocess.run(  # noqa: S603 - our interpreter, our own files
        [sys.executable, "-m", "mypyc", *options, *files],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    shutil.rmtree(root / "build", ignore_errors=True)  # mypyc's C files, written beside the sources
    if done.returncode != 0:
        return f"compiling with mypyc failed (see {log})"
    if digests != {name: _digest(name, root) for name in COMPILED}:
        return "sources changed while compiling: run it again"
    manifest = {"python": sys.implementation.cache_tag, "modules": digests}
    text = json.dumps(manifest, indent=2) + "\n"
    (root / "keypolicy" / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return None


def build() -> int:
    """Compile :data:`COMPILED` in place; write the manifest only if it all worked. 0 or 1."""
    _clean()
    failed = compile_tree(ROOT, ROOT.parent / "build" / "mypyc" / "mypyc.log")
    if failed:
        _clean()
        print(f"keypolicy: {failed}: the pure-Python build will be used", file=sys.stderr)
        return 1
    print(f"keypolicy: compiled {len(COMPILED)} modules with mypyc", file=sys.stderr)
    return 0
