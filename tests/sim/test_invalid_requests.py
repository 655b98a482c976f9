"""Requests the API would refuse as invalid: the engine and the provider model agree on which,
the simulator counts them as rejections with their reason, and ``simulate`` says so."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.catalog import SNAPSHOTS
from keypolicy.core import Engine, Reject, Send, Submit
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.records import UsageRecord
from keypolicy.sim.console import invalid_note, summary_tables
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import Arrival
from keypolicy.state import MemoryStore
from keypolicy.upstream import Provider, ProviderLimits, UpstreamRequest
from tests.commands import run_keypolicy
from tests.sim.test_driver import Poisson

T0 = 1_795_000_000.0
MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", *(s for s in SNAPSHOTS if "gpt-5" not in s)]
POLICY = """\
version: 1
name: agree
projects:
  p:
    models:
      gpt-4o: {rpm: 1M, tpm: 2000M}
      gpt-4o-mini: {rpm: 1M, tpm: 2000M}
      gpt-4.1: {rpm: 1M, tpm: 2000M}
      gpt-4.1-mini: {rpm: 1M, tpm: 2000M}
      gpt-4.1-nano: {rpm: 1M, tpm: 2000M}
      o3: {rpm: 1M, tpm: 2000M}
      o4-mini: {rpm: 1M, tpm: 2000M}
keys:
  k: {project: p, env: K}
pools:
  one: {keys: [k]}
priorities:
  - {name: only, max_wait: 1h}
domains:
  d:
    pool: one
    priority: only
    model: gpt-4o
    models: [gpt-4o-mini, gpt-4.1, gpt-4.1-mini, gpt-4.1-nano, o3, o4-mini]
"""

_POLICY = load_policy_text(POLICY, "agree.yaml").policy
_CONFIG = compile_policy(_POLICY)


@settings(max_examples=300)
@given(
    model=st.sampled_from(MODELS),
    prompt=st.integers(0, 1_100_000),
    most=st.integers(0, 140_000),
)
def test_the_engine_and_the_provider_agree_on_what_is_invalid(
    model: str, prompt: int, most: int
) -> None:
    """The engine refuses (``invalid_request``) exactly what the provider answers with a 400,
    for every catalog model and snapshot the policy allows: the simulator never sends an
    invalid request, and the mock would refuse what the runtime lets through."""
    engine = Engine(_CONFIG, MemoryStore())
    (action,) = engine.handle(Submit("r", "d", T0, prompt, most, 1, model))
    provider = Provider(ProviderLimits.from_policy(_POLICY))
    outcome = provider.submit(UpstreamRequest("p", model, prompt_tokens=prompt, max_output=most), 0)
    refused = isinstance(action, Reject)
    if refused:
        assert isinstance(action, Reject)
        assert action.reason == "invalid_request"
    else:
        assert isinstance(action, Send)
    assert refused == (outcome.status == 400)


class _Oversized(Poisson):
    """Poisson arrivals, every third asking for 20,000 output tokens of gpt-4o (cap 16,384)."""

    def arrivals(self, seed: int):  # type: ignore[no-untyped-def]
        for i, a in enumerate(super().arrivals(seed)):
            most = 20_000 if i % 3 == 0 else a.max_output_tokens
            yield Arrival(a.time, a.domain, a.prompt_tokens, most, None, "gpt-4o")


ONE = """\
version: 1
name: one
projects:
  p: {models: {gpt-4o: {rpm: 600, tpm: 10M}}}
keys:
  k: {project: p, env: K}
pools:
  a: {keys: [k]}
priorities:
  - {name: only, max_wait: 1h}
domains:
  d: {pool: a, priority: only, model: gpt-4o}
"""


def test_a_simulation_counts_invalid_requests_as_rejections_with_their_reason() -> None:
    records: list[UsageRecord] = []
    policy = load_policy_text(ONE, "one.yaml").policy
    summary = simulate_policy(policy, _Oversized(0.2, 600), [1], on_record=records.append)
    invalid = [r for r in records if r.reason.startswith("invalid_request:")]
    assert invalid
    assert len(invalid) == sum(1 for r in records if r.requested_max_tokens == 20_000)
    assert all(r.outcome == "rejected" and r.attempts == 0 and r.key == "" for r in invalid)
    assert "above gpt-4o's output cap of 16,384 tokens" in invalid[0].reason
    totals = summary["totals"]
    assert totals["reasons"] == {"invalid_request": len(invalid)}
    assert totals["rejected"] == len(invalid)
    assert totals["ok"] == len(records) - len(invalid)
    assert summary["domains"]["d"]["reasons"] == {"invalid_request": len(invalid)}
    note = invalid_note(summary)
    assert note is not None
    assert note.startswith(f"warning: {len(invalid)} request(s) refused as invalid")
    assert summary_tables(summary)[0].caption == note


def test_simulate_warns_of_a_trace_asking_more_than_the_model_can_write(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    rows = "".join(f"{1795000000 + 60 * i},100,{20_000 if i % 2 else 500},\n" for i in range(6))
    trace.write_text("timestamp,prompt_tokens,max_tokens,completion_tokens\n" + rows)
    merged = Path(__file__).parents[2] / "policies" / "clinic-merged.yaml"
    out = tmp_path / "s.json"
    result = run_keypolicy(
        "simulate", merged, "--trace", trace, "--domain", "diagnosis", "--json", out
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["totals"]["reasons"] == {"invalid_request": 3}
    assert summary["totals"]["ok"] == 3
    shown = " ".join(result.stdout.split())
    assert "warning: 3 request(s) refused as invalid for their model" in shown


def test_compare_warns_per_variant() -> None:
    from keypolicy.sim.console import comparison_tables

    policy = load_policy_text(ONE, "one.yaml").policy
    oversized = simulate_policy(policy, _Oversized(0.2, 300), [1])
    plain = simulate_policy(policy, Poisson(0.2, 300), [1])
    tables = comparison_tables({"over": oversized, "plain": plain})
    (rejected,) = [t for t in tables if t.title == "rejected"]
    caption = str(rejected.caption)
    assert caption.startswith("warning: over: ")
    assert "plain:" not in caption
    assert all(t.caption is None for t in tables if t is not rejected)
