"""Usage records replay as traffic: what each request asked for comes back as an arrival, so
tomorrow's policy can be tried on the requests of a day that was simulated (or, later, lived)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from keypolicy.policy import load_policy_text
from keypolicy.records import FIELDS, REQUESTED, RecordWriter, UsageRecord
from keypolicy.report.records import read_records
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import Arrival, TrafficError, trace_arrivals
from tests.sim.test_driver import Poisson

TIGHT = """\
version: 1
name: tight
projects:
  p: {models: {gpt-4o-mini: {rpm: 60, tpm: 10M}, gpt-4o: {rpm: 60, tpm: 10M}}}
keys:
  k: {project: p, env: K}
pools:
  a: {keys: [k]}
priorities:
  - {name: only, max_wait: 5s}
domains:
  d: {pool: a, priority: only, model: gpt-4o-mini, models: [gpt-4o-mini, gpt-4o]}
"""


class Mixed(Poisson):
    """Poisson arrivals with varied sizes, some naming a model and some not."""

    def arrivals(self, seed: int):  # type: ignore[no-untyped-def]
        for i, a in enumerate(super().arrivals(seed)):
            yield Arrival(
                a.time,
                "d",
                100 + i % 7,
                20 + i % 5,
                (5 + i % 11) if i % 3 else None,
                "gpt-4o" if i % 4 == 0 else None,
            )


def _simulate(tmp_path: Path, rate: float) -> tuple[list[Arrival], list[UsageRecord], Path]:
    """Simulate the tight policy (60 RPM, 5 s of patience) at ``rate`` per second."""
    policy = load_policy_text(TIGHT, "tight.yaml").policy
    traffic = Mixed(rate, 600.0)
    records: list[UsageRecord] = []
    path = tmp_path / "records.csv"
    with RecordWriter(path) as writer:

        def keep(r: UsageRecord) -> None:
            records.append(r)
            writer.write(r)

        simulate_policy(policy, traffic, [3], on_record=keep)
    return list(traffic.arrivals(3)), records, path


def test_records_replay_as_the_requests_asked(tmp_path: Path) -> None:
    arrivals, records, path = _simulate(tmp_path, 2.0)  # twice the limit: rejections too
    outcomes = {r.outcome for r in records}
    assert "ok" in outcomes
    assert "rejected" in outcomes
    replayed = list(trace_arrivals([path]).arrivals(0))
    assert len(replayed) == len(arrivals)
    by_submitted = sorted(records, key=lambda r: (r.submitted, int(r.request_id[1:])))
    first = by_submitted[0].submitted
    for record, again in zip(by_submitted, replayed, strict=True):
        assert again.time == pytest.approx(record.submitted - first, abs=1e-6)
        assert again.domain == record.domain
        assert again.model == (record.requested_model or None)
        assert again.prompt_tokens == record.requested_prompt_tokens
        assert again.max_output_tokens == record.requested_max_tokens
        # Answered: what it used; not answered: the provider model draws it again.
        expected = record.completion_tokens if record.outcome == "ok" else None
        assert again.completion_tokens == expected
    # The records' requests are the arrivals (in submission order), field for field.
    originals = sorted(arrivals, key=lambda a: a.time)
    assert [(a.domain, a.model, a.prompt_tokens, a.max_output_tokens) for a in originals] == [
        (a.domain, a.model, a.prompt_tokens, a.max_output_tokens) for a in replayed
    ]


def test_a_replayed_day_gives_the_same_answers_when_nothing_was_refused(tmp_path: Path) -> None:
    _, records, path = _simulate(tmp_path, 0.2)
    assert {r.outcome for r in records} == {"ok"}
    policy = load_policy_text(TIGHT, "tight.yaml").policy
    again: list[UsageRecord] = []
    simulate_policy(policy, trace_arrivals([path]), [3], on_record=again.append)
    assert len(again) == len(records)
    assert sum(r.cost_usd for r in again) == pytest.approx(sum(r.cost_usd for r in records))
    assert sorted(r.completion_tokens for r in again) == sorted(
        r.completion_tokens for r in records
    )


def test_records_written_before_the_requested_fields_are_refused_clearly(
    tmp_path: Path,
) -> None:
    _, _, path = _simulate(tmp_path, 0.2)
    old = tmp_path / "old.csv"
    with path.open(newline="") as src, old.open("w", newline="") as dst:
        rows = csv.reader(src)
        out = csv.writer(dst)
        keep = [i for i, name in enumerate(FIELDS) if name not in REQUESTED]
        for row in rows:
            out.writerow([row[i] for i in keep])
    with pytest.raises(TrafficError) as err:
        trace_arrivals([old])
    assert "usage records without requested_model" in str(err.value)
    assert str(old) in str(err.value)
    # Mapped by hand, they replay what was used.
    columns = {"timestamp": "submitted", "completion_tokens": "completion_tokens"}
    assert len(list(trace_arrivals([old], columns=columns).arrivals(0))) > 0
    # And the report still reads them (the requested fields from what was used).
    first = next(read_records(old))
    assert first.requested_model == ""
    assert first.requested_prompt_tokens == first.prompt_tokens
    assert first.requested_max_tokens == 0


def test_a_refused_record_that_named_no_max_tokens_says_what_is_missing(tmp_path: Path) -> None:
    _, records, path = _simulate(tmp_path, 0.2)
    # As the runtime may write them: no max_tokens named (0), one request never answered.
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["requested_max_tokens"] = "0"
    rows[1]["outcome"] = "rejected"
    edited = tmp_path / "edited.csv"
    with edited.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(TrafficError) as err:
        trace_arrivals([edited])
    assert f"{edited}:3:" in str(err.value)
    assert "named no max_tokens and got no answer" in str(err.value)
    # With a max_tokens for the file, it replays; answered requests keep their completions.
    replayed = list(trace_arrivals([edited], max_tokens=64).arrivals(0))
    assert len(replayed) == len(records)
    assert {a.max_output_tokens for a in replayed} == {64}


def test_records_are_timed_in_seconds_whatever_the_time_format_says(tmp_path: Path) -> None:
    _, _, path = _simulate(tmp_path, 0.2)
    with pytest.raises(TrafficError) as err:
        trace_arrivals([path], time_format="milliseconds")
    assert "usage records are timed in epoch seconds, not milliseconds" in str(err.value)
    assert len(list(trace_arrivals([path], time_format="seconds").arrivals(0))) > 0
