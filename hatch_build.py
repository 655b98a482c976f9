"""The wheel's build hook: the simulator's hot modules compiled with mypyc where they can be.

``pip install`` (or ``pip wheel``, ``python -m build``) runs this through hatchling for every
standard wheel. It copies ``src/keypolicy`` to a temporary folder, compiles there exactly
``keypolicy._native.COMPILED`` with ``keypolicy._native.compile_tree`` (the code ``make`` runs,
loaded from its file: it needs only the standard library), and adds to the wheel the extension
modules, mypyc's shared runtime module (at the top of site-packages, where the extension modules
import it from) and the manifest of the sources' hashes that ``_native.guard()`` checks at import.
The wheel is then specific to this Python and platform (e.g. ``cp311-cp311-linux_x86_64``).

Where that cannot be done (no C compiler, no mypyc, a failed compile, or ``KEYPOLICY_BUILD_PURE``
set) the wheel is pure Python (``py3-none-any``) and never fails to build: a warning is printed
(pip shows it with ``-v``) and the manifest says why, which ``keypolicy --version`` repeats.
Editable installs (``pip install -e``, used by ``make``) are never compiled here: ``make``
compiles in place.

Types for mypyc: the isolated build environment has hatchling, mypy and setuptools (for mypyc's C
build), not keypolicy's dependencies. So mypy runs with the config written below, not the
project's: imports it cannot find (pydantic, numpy, simpy) are ``Any``, which compiles to generic
(and equally correct) Python operations at those few boundaries; errors in the plain modules only
imported (the pydantic models, here without pydantic's plugin) are not reported. The compiled
modules themselves are type-checked strictly by ``make test``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MYPY_CONFIG = """\
[mypy]
ignore_missing_imports = True
follow_imports = silent
"""


def _load_native(root: Path) -> ModuleType:
    """``keypolicy._native`` from the sources, without importing ``keypolicy`` (or pydantic)."""
    spec = importlib.util.spec_from_file_location(
        "_keypolicy_native_for_build", root / "src" / "keypolicy" / "_native.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {root / 'src/keypolicy/_native.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CompiledWheelHook(BuildHookInterface):  # type: ignore[type-arg]  # generic in hatchling
    """Adds the mypyc-compiled modules to a standard wheel, or says why the wheel is pure."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile into a temporary folder and force its files into the wheel."""
        if self.target_name != "wheel" or version == "editable":
            return
        native = _load_native(Path(self.root))
        self._work = Path(tempfile.mkdtemp(prefix="keypolicy-wheel-"))
        tree = self._work / "tree"
        shutil.copytree(
            Path(self.root) / "src" / "keypolicy",
            tree / "keypolicy",
            ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", native.MANIFEST_NAME),
        )
        if os.environ.get("KEYPOLICY_BUILD_PURE"):
            failed: str | None = "KEYPOLICY_BUILD_PURE was set"
        else:
            config = self._work / "mypy.ini"
            config.write_text(MYPY_CONFIG, encoding="utf-8")
            log = self._work / "mypyc.log"
            failed = native.compile_tree(tree, log, ["--config-file", str(config)])
            if failed and failed.startswith("compiling with mypyc failed") and log.is_file():
                tail = log.read_text(encoding="utf-8").splitlines()[-20:]  # the log goes with _work
                failed = "compiling with mypyc failed:\n    " + "\n    ".join(tail)
        manifest = tree / "keypolicy" / native.MANIFEST_NAME
        if failed:
            self._pure(build_data, native, manifest, failed)
            return
        compiled_from = [native._source(name, tree) for name in native.COMPILED]
        # The sources compiled go in too (in place of src/'s): the manifest's hashes are theirs,
        # so a source edited during the build cannot leave a wheel that never runs compiled.
        for found in [*compiled_from, *sorted(tree.rglob("*.so")), *sorted(tree.rglob("*.pyd"))]:
            build_data["force_include"][str(found)] = found.relative_to(tree).as_posix()
        build_data["force_include"][str(manifest)] = f"keypolicy/{native.MANIFEST_NAME}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(
            f"keypolicy: compiled {len(native.COMPILED)} modules with mypyc into the wheel"
        )

    def _pure(
        self, build_data: dict[str, Any], native: ModuleType, manifest: Path, why: str
    ) -> None:
        """A plain-Python wheel whose manifest says why it has no compiled module."""
        reason = why.splitlines()[0].rstrip(":")
        record = {"python": sys.implementation.cache_tag, "modules": {}}
        record[native.NOT_COMPILED] = f"{reason}, where the wheel was built"
        manifest.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        build_data["force_include"][str(manifest)] = f"keypolicy/{native.MANIFEST_NAME}"
        self.app.display_warning(
            f"keypolicy: {why}\nkeypolicy: building a plain-Python wheel: it works the same, "
            "but the simulator runs five to six times slower"
        )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary folder once the wheel holds its files."""
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
