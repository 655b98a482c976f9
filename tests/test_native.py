"""The compiled build is used only while it matches its sources, and never changes a decision."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keypolicy import _native

ENGINE_FILE = "import keypolicy.core.engine as e; print(e.__file__)"


def _engine_file(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", ENGINE_FILE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_every_compiled_module_has_its_source() -> None:
    for name in _native.COMPILED:
        assert _native._source(name).is_file(), name


def test_a_manifest_that_does_not_match_the_sources_is_not_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "_compiled.json"
    monkeypatch.setattr(_native, "MANIFEST", manifest)
    assert not _native._fresh()  # no manifest at all
    digests = {name: _native._digest(name) for name in _native.COMPILED}
    manifest.write_text(json.dumps({"python": sys.implementation.cache_tag, "modules": digests}))
    assert _native._fresh()
    digests["keypolicy.core.engine"] = "0" * 64  # the engine was edited since
    manifest.write_text(json.dumps({"python": sys.implementation.cache_tag, "modules": digests}))
    assert not _native._fresh()
    manifest.write_text(json.dumps({"python": "cpython-00", "modules": digests}))
    assert not _native._fresh()
    manifest.write_text("{not json")
    assert not _native._fresh()


def test_keypolicy_pure_loads_every_module_from_its_source() -> None:
    assert _engine_file(KEYPOLICY_PURE="1").endswith("engine.py")


@pytest.mark.skipif(not _native._fresh(), reason="no compiled build here (make builds it)")
def test_a_fresh_compiled_build_is_used_unless_pure_is_asked() -> None:
    compiled = not _engine_file().endswith(".py")  # a new process, with this one's environment
    assert compiled == (not os.environ.get("KEYPOLICY_PURE"))
    assert _native.is_compiled() == compiled


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_rebuilds_from_the_same_list() -> None:
    """The Makefile reads the compiled modules from COMPILED (listed once): its sources are
    exactly theirs, and _native.py."""
    root = Path(_native.__file__).resolve().parents[2]
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "print-hot"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = [f"src/{name.replace('.', '/')}.py" for name in _native.COMPILED]
    assert out == [*expected, "src/keypolicy/_native.py"]
