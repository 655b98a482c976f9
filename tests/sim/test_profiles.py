"""Traffic profiles as files: located errors, and the profiles shipped in simulations/."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from keypolicy.policy import load_policy
from keypolicy.sim.traffic import SyntheticTraffic, TrafficError, load_traffic

ROOT = Path(__file__).resolve().parents[2]


def problems(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TrafficError) as caught:
        load_traffic(path)
    prefix = f"{path}:"
    return [issue.replace(prefix, "p:") for issue in caught.value.issues]


def test_every_problem_is_reported_at_its_file_line_and_column(tmp_path: Path) -> None:
    text = """\
version: 1
name: bad
start: 2026-11-18T00:00:00
domains:
  chat:
    rate: 1200/hr
    shape: clinik
    prompt_tokens: {lognormal: {median: 800, p95: 500}}
    max_tokens: 1000
    complection_tokens: 100
    process: {bursty: {cv: 0.5}}
    bursts:
      - {at: 17:00, requests: 600, over: 10m}
  xray:
    rate: 10/h
    prompt_tokens: {uniform: [10, 5]}
    max_tokens: lots
"""
    assert problems(tmp_path, text) == [
        "p:3:8: start: '2026-11-18 00:00:00' needs its UTC offset, such as "
        "2026-11-18T00:00:00-05:00",
        "p:6:11: domains.chat.rate: '1200/hr' is not a rate such as 1200/h, 20/min or 5/s",
        "p:7:12: domains.chat.shape: 'clinik' is not a shape: did you mean 'clinic'?",
        "p:8:21: domains.chat.prompt_tokens.lognormal: p95 must be larger than the median",
        "p:10:5: domains.chat.complection_tokens: unknown field 'complection_tokens' "
        "(did you mean 'completion_tokens'?)",
        "p:11:5: domains.chat.process: a bursty process has a cv above 1 (1 is poisson)",
        "p:13:14: domains.chat.bursts[0].at: write the time of day in quotes, such as '17:00' "
        "(YAML reads 17:00 unquoted as the number 1020)",
        "p:16:5: domains.xray.prompt_tokens: uniform: [low, high] needs low <= high",
        "p:17:17: domains.xray.max_tokens: 'lots' is not a count such as 800000, 800_000, "
        "800k or 2M",
    ]


def test_missing_and_misspelt_top_level_fields(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nname: x\ndomain: {}\n") == [
        "p:1:1: domains: 'domains' is required (add it here)",
        "p:3:1: domain: unknown field 'domain' (did you mean 'domains'?)",
    ]
    assert problems(tmp_path, "version: 1\nkind: traces\nname: x\n") == [
        "p:2:7: kind: 'traces' is not one of: synthetic, trace (did you mean 'trace'?)",
    ]
    assert problems(tmp_path, "version: 1\nname: x\ndomains:\n  a: {rate: 1/s}\n") == [
        "p:4:3: domains.a: prompt_tokens and max_tokens are required",
    ]


def test_yaml_syntax_and_wrong_files(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\ndomains: {a: [}\n") == [
        "p:2:14: YAML syntax: the '[' opened here is never closed (noticed at line 2, column 15: "
        "expected the node content, but found '}'; close it with ']' where the list ends)",
    ]
    (tmp_path / "t.csv").write_text("a,b\n")
    with pytest.raises(TrafficError, match="this is a trace file"):
        load_traffic(tmp_path / "t.csv")
    with pytest.raises(TrafficError, match="no such file"):
        load_traffic(tmp_path / "missing.yaml")


def test_a_trace_profile_places_its_problems_too(tmp_path: Path) -> None:
    text = """\
version: 1
kind: trace
name: t
files:
  - path: traces/nowhere.csv
    domain: chat
"""
    (tmp_path / "traces").mkdir()
    [issue] = problems(tmp_path, text)
    assert issue.startswith("p:5:11: files[0].path: no such file: traces/nowhere.csv (relative ")
    assert problems(tmp_path, text.replace("domain:", "colums: {timestamp: T}\n    domain:")) == [
        "p:6:5: files[0].colums: unknown field 'colums' (did you mean 'columns'?)",
    ]


def test_clinic_day_fits_the_clinic_policies() -> None:
    traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    assert isinstance(traffic, SyntheticTraffic)
    for name in ("clinic-separate", "clinic-merged", "clinic-single"):
        policy = load_policy(ROOT / "policies" / f"{name}.yaml").policy
        assert traffic.domains() == set(policy.domains)
        for domain, spec in traffic.profile.domains.items():
            assert spec.model in policy.domains[domain].allowed_models()
    expected = sum(traffic.expected_requests().values())
    assert 100_000 <= expected <= 300_000
    assert str(traffic.start) == "2026-11-18 00:00:00-05:00"
    assert traffic.duration_s == 86400


def test_azure_traces_profile_replays_both_files() -> None:
    traffic = load_traffic(ROOT / "simulations" / "azure-traces.yaml")
    assert traffic.domains() == {"coding", "chat"}
    arrivals = list(traffic.arrivals(0))
    assert sum(a.domain == "coding" for a in arrivals) == 8_819
    assert sum(a.domain == "chat" for a in arrivals) == 19_366
    assert all(a.time <= b.time for a, b in pairwise(arrivals))
    assert arrivals[0].time == 0
    assert str(traffic.start) == "2023-11-16 18:15:46.680590+00:00"
    assert {a.max_output_tokens for a in arrivals if a.domain == "chat"} == {1000}
    assert all(a.max_output_tokens == a.completion_tokens for a in arrivals if a.domain == "coding")
    assert {a.model for a in arrivals} == {"gpt-4o-mini"}
