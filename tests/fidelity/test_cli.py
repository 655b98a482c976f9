"""``keypolicy fidelity`` and ``keypolicy replay`` on the command line: output, and bad input
(exit 2, what and where, no traceback, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

from keypolicy.records import RecordWriter
from tests.commands import run_keypolicy
from tests.fidelity.test_compare import record

ROOT = Path(__file__).resolve().parents[2]


def records_file(path: Path, cost: float) -> Path:
    with RecordWriter(path) as writer:
        for _ in range(3):
            writer.write(record(cost=cost))
    return path


def test_fidelity_prints_the_table_and_writes_the_json(tmp_path: Path) -> None:
    predicted = records_file(tmp_path / "predicted.csv", 0.010)
    observed = records_file(tmp_path / "observed.csv", 0.0101)
    out = tmp_path / "fidelity.json"
    result = run_keypolicy("fidelity", predicted, observed, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "upstream 429s" in result.stdout
    assert "cost $" in result.stdout
    assert "+1.00%" in result.stdout
    data = json.loads(out.read_text())
    assert data["worst"]["cost_usd"] > 0
    assert data["observed"] == str(observed)


def test_fidelity_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    observed = records_file(tmp_path / "observed.csv", 0.01)
    (tmp_path / "summary.json").write_text('{"domains": 3,')
    out = tmp_path / "fidelity.json"
    result = run_keypolicy("fidelity", tmp_path / "summary.json", observed, "--json", out)
    assert result.returncode == 2
    assert "summary.json:1:" in result.stderr
    assert "not JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    missing = run_keypolicy("fidelity", tmp_path / "nothing.csv", observed)
    assert missing.returncode == 2
    assert "nothing.csv: no such file" in missing.stderr


def test_replay_refuses_bad_options_before_any_work(tmp_path: Path) -> None:
    policy = ROOT / "policies" / "azure-two-domains.yaml"
    traffic = ROOT / "simulations" / "azure-traces.yaml"
    base = ("replay", policy, "--traffic", traffic, "--against", "http://127.0.0.1:9")
    window = run_keypolicy(*base, "--window", "10m-5m", "--ledger", tmp_path / "l.jsonl")
    assert window.returncode == 2
    assert "the end must come after the start" in window.stderr
    taken = tmp_path / "taken.jsonl"
    taken.write_text("")
    exists = run_keypolicy(*base, "--ledger", taken)
    assert exists.returncode == 2
    assert "taken.jsonl: exists" in exists.stderr
    clinic = ROOT / "policies" / "clinic-merged.yaml"
    wrong = run_keypolicy(
        "replay", clinic, "--traffic", traffic, "--against", "http://127.0.0.1:9",
        "--ledger", tmp_path / "w.jsonl",
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "domains the policy 'clinic-merged' does not" in wrong.stderr
    for result in (window, exists, wrong):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "l.jsonl").exists()
    assert not (tmp_path / "w.jsonl").exists()


def test_replay_refuses_missing_keys_and_a_provider_that_is_not_there(tmp_path: Path) -> None:
    policy = ROOT / "policies" / "azure-two-domains.yaml"
    traffic = ROOT / "simulations" / "azure-traces.yaml"
    ledger = tmp_path / "l.jsonl"
    base = ("replay", policy, "--traffic", traffic, "--ledger", ledger)
    keys = tmp_path / "keys.env"
    no_keys = run_keypolicy(*base, "--against", "http://127.0.0.1:9")
    assert no_keys.returncode == 2
    assert "AZURE_DEMO_KEY_CODING is not set" in no_keys.stderr
    keys.write_text("AZURE_DEMO_KEY_CODING=sk-canary-a-1\nAZURE_DEMO_KEY_CHAT=sk-canary-b-2\n")
    nobody = run_keypolicy(*base, "--against", "http://127.0.0.1:9", "--env-file", keys)
    assert nobody.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in nobody.stderr
    assert "sk-canary" not in nobody.stderr
    for result in (no_keys, nobody):
        assert "Traceback" not in result.stderr
    assert not ledger.exists()
