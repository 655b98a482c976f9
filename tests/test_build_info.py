"""``keypolicy --version`` says which build runs: compiled with mypyc, or plain Python and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keypolicy import __version__, _native

N = len(_native.COMPILED)


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest in a temporary place, every module loading as plain Python, no KEYPOLICY_PURE."""
    path = tmp_path / "_compiled.json"
    monkeypatch.setattr(_native, "MANIFEST", path)
    monkeypatch.setattr(_native, "_loads_compiled", lambda name: False)
    monkeypatch.delenv("KEYPOLICY_PURE", raising=False)
    return path


def _write(path: Path, **changes: object) -> None:
    record: dict[str, object] = {
        "python": sys.implementation.cache_tag,
        "modules": {name: _native._digest(name) for name in _native.COMPILED},
    }
    path.write_text(json.dumps({**record, **changes}), encoding="utf-8")


def test_every_module_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native, "_loads_compiled", lambda name: True)
    assert _native.build_info() == f"compiled with mypyc: {N} modules"


def test_a_missing_compiled_file_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native, "_loads_compiled", lambda name: name != "keypolicy.metrics")
    assert _native.build_info() == (
        f"partly compiled with mypyc: {N - 1} of {N} modules (files missing)"
    )


def test_keypolicy_pure_comes_first(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(manifest)
    monkeypatch.setenv("KEYPOLICY_PURE", "1")
    assert _native.build_info() == "plain Python: KEYPOLICY_PURE is set"


def test_no_manifest_means_not_built(manifest: Path) -> None:
    assert _native.build_info() == (
        "plain Python: no compiled build (make builds one; so does a wheel built where a C "
        "compiler is)"
    )


def test_a_plain_wheel_says_why_it_was_not_compiled(manifest: Path) -> None:
    why = "no C compiler (cc or gcc), where the wheel was built"
    _write(manifest, modules={}, **{_native.NOT_COMPILED: why})
    assert _native.build_info() == f"plain Python: not built: {why}"


def test_an_edited_source_is_named(manifest: Path) -> None:
    _write(manifest)
    record = json.loads(manifest.read_text(encoding="utf-8"))
    record["modules"]["keypolicy.core.engine"] = "0" * 64
    manifest.write_text(json.dumps(record), encoding="utf-8")
    assert _native.build_info() == (
        "plain Python: sources changed since the build (keypolicy.core.engine)"
    )
    record["modules"]["keypolicy.records"] = "0" * 64
    manifest.write_text(json.dumps(record), encoding="utf-8")
    assert _native.build_info() == (
        "plain Python: sources changed since the build (keypolicy.core.engine and 1 more)"
    )


def test_a_build_for_another_python(manifest: Path) -> None:
    _write(manifest, python="cpython-00")
    assert _native.build_info() == (
        f"plain Python: built for cpython-00, running {sys.implementation.cache_tag}"
    )


@pytest.mark.parametrize("text", ["{not json", "[]", '{"python": "x"}'])
def test_an_unreadable_manifest(manifest: Path, text: str) -> None:
    manifest.write_text(text, encoding="utf-8")
    assert _native.build_info() == f"plain Python: unreadable build manifest {manifest}"


def test_a_fresh_manifest_without_its_compiled_files(manifest: Path) -> None:
    _write(manifest)
    assert _native.build_info() == "plain Python: the compiled files are missing"


def test_the_count_follows_the_guard() -> None:
    compiled = _native.is_compiled()
    assert _native._loads_compiled("keypolicy.core.engine") == compiled
    assert _native.build_info().startswith("compiled" if compiled else "plain Python")


def _version(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "keypolicy", "--version"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_version_says_which_build_runs() -> None:
    # A new process with this one's environment decides as this one did.
    assert _version() == f"keypolicy {__version__} ({_native.build_info()})"
    assert _version(KEYPOLICY_PURE="1") == (
        f"keypolicy {__version__} (plain Python: KEYPOLICY_PURE is set)"
    )


def test_no_c_compiler_means_no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native.shutil, "which", lambda name: None)
    assert _native.compile_tree(tmp_path, tmp_path / "mypyc.log") == "no C compiler (cc or gcc)"
    assert not list(tmp_path.iterdir())  # nothing run, nothing written
