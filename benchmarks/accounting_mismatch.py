"""What a wrong accounting assumption costs: the clinic day when OpenAI counts more strictly.

The policy (``policies/clinic-separate.yaml``) assumes one way of counting, the simulated provider
counts another, and the engine must find out from the provider's answers. One rule at a time, on
the clinic day (``simulations/clinic-day.yaml``, seed 0):

- ``refund_unused``: the policy assumes the unused part of ``max_tokens`` comes back when a
  response completes (``provider: {refund_unused: true}``), the provider keeps it;
- ``quantum_tokens``: the policy assumes whole-minute token limits (``quantum_tokens: null``),
  the provider spends them in 1 s slices (at most a sixtieth of the TPM at once);
- ``quantum_requests``: the same for the request limits.

For each rule, four runs:

- matched: the provider counts as the policy assumes (the prediction the user expects);
- before: the mismatch, with the engine as it was before issue 13 (it goes on giving unused
  tokens back whatever the 429s say, and keeps the whole minute's burst);
- after: the mismatch, with the engine as it is (a 429 on a token limit stops refunds to it; a
  429 whose numbers show a smaller burst than the bucket's teaches the bucket that burst);
- knows: the policy assuming the provider's rule (what converging should come to).

It prints the upstream 429s and the x-ray rejections of each run, checks that the matched run is
the same whether or not the engine can learn (learning never fires when nothing mismatches),
and ends with one line per rule: the 429s before and after. Then the request slices once more on
the Azure traces (``policies/azure-one-pool.yaml``), where they cost rejections and no 429 at
all: there the engine learns only from answers' ``x-ratelimit-reset-*`` headers, which the
simulator does not pass it yet (see the run's note). Writes
``benchmarks/results/accounting_mismatch.json``. A few minutes in plain Python.

    .venv/bin/python benchmarks/accounting_mismatch.py
"""

from __future__ import annotations

import os

# "before" patches the engine, which only its plain-Python build allows (counts, not speed, are
# measured here): load it from source, as KEYPOLICY_PURE=1 does.
os.environ["KEYPOLICY_PURE"] = "1"

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from keypolicy.core.admission import Admission
from keypolicy.core.config import BucketDef
from keypolicy.policy import load_policy
from keypolicy.policy.model import Policy
from keypolicy.sim.run import RunResult, run_once
from keypolicy.sim.traffic import Traffic, load_traffic
from keypolicy.upstream import Accounting

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _refunds_never_stop() -> Iterator[None]:
    """The engine before the fix: whatever a 429 says, unused tokens keep coming back."""
    learn: Callable[..., None] = Admission.after_rate_limit

    def after_rate_limit(self: Admission, *args: Any, **kwargs: Any) -> None:
        refunds = list(self._refunds)
        learn(self, *args, **kwargs)
        self._refunds[:] = refunds

    Admission.after_rate_limit = after_rate_limit  # type: ignore[method-assign]
    try:
        yield
    finally:
        Admission.after_rate_limit = learn  # type: ignore[method-assign]


@contextmanager
def _bursts_never_learnt() -> Iterator[None]:
    """The engine before the fix: a bucket keeps the policy's burst whatever the 429s show."""
    adopt: Callable[..., BucketDef] = Admission.adopt_burst

    def adopt_burst(
        self: Admission, b: int, held: float, shown: float | None, now: float
    ) -> BucketDef:
        return self.buckets[b]

    Admission.adopt_burst = adopt_burst  # type: ignore[method-assign]
    try:
        yield
    finally:
        Admission.adopt_burst = adopt  # type: ignore[method-assign]


@contextmanager
def _nothing_learnt() -> Iterator[None]:
    """The engine learning neither (for the matched runs: they must not change)."""
    with _refunds_never_stop(), _bursts_never_learnt():
        yield


def _simulate(
    policy: Policy, traffic: Traffic, accounting: Accounting, extra_s: float = 3600.0
) -> tuple[RunResult, float]:
    begin = time.perf_counter()
    result = run_once(policy, traffic, 0, extra_s=extra_s, accounting=accounting)
    return result, round(time.perf_counter() - begin, 1)


def _numbers(result: RunResult, seconds: float, domain: str) -> dict[str, Any]:
    summary = result.summary
    return {
        "upstream_429": summary["totals"]["upstream_429"],
        f"{domain}_rejected": summary["domains"][domain]["rejected"],
        "rejected": summary["totals"]["rejected"],
        "seconds": seconds,
    }


def _assuming(policy: Policy, rule: str, value: bool | float | None) -> Policy:
    """``policy`` assuming ``rule`` is ``value`` (its other assumptions kept)."""
    provider = policy.provider.model_copy(update={rule: value})
    return policy.model_copy(update={"provider": provider})


# rule -> (what the policy assumes, what the provider does)
RULES: dict[str, tuple[bool | float | None, bool | float | None]] = {
    "refund_unused": (True, False),
    "quantum_tokens": (None, 1.0),
    "quantum_requests": (None, 1.0),
}


def _rule(
    base: Policy, traffic: Traffic, rule: str, domain: str, extra_s: float = 3600.0
) -> dict[str, Any]:
    """The four runs of one rule (see the module docstring), the matched one checked twice."""
    assumed, actual = RULES[rule]
    policy = _assuming(base, rule, assumed)
    matched = Accounting.from_policy(policy)
    mismatched = matched.with_rule(rule, actual)
    runs: dict[str, tuple[RunResult, float]] = {}
    contexts: dict[str, tuple[Policy, Accounting, Callable[[], AbstractContextManager[Any]]]] = {
        "matched": (policy, matched, nullcontext),
        "before": (policy, mismatched, _nothing_learnt),
        "after": (policy, mismatched, nullcontext),
        "knows": (_assuming(base, rule, actual), mismatched, nullcontext),
    }
    for name, (assuming, provider, context) in contexts.items():
        with context():
            runs[name] = _simulate(assuming, traffic, provider, extra_s)
    with _nothing_learnt():
        unlearnt, _ = _simulate(policy, traffic, matched, extra_s)
    learnt = runs["matched"][0]
    same = (unlearnt.summary, unlearnt.series) == (learnt.summary, learnt.series)
    if not same:
        raise AssertionError(f"{rule}: the matched run changed with the engine's learning")
    out = {name: _numbers(result, seconds, domain) for name, (result, seconds) in runs.items()}
    return {"runs": out, "matched_unchanged_without_learning": same}


def _print(rule: str, found: dict[str, Any], domain: str, label: str) -> None:
    for name, r in found["runs"].items():
        print(
            f"{label:30} {name:8} upstream 429s {r['upstream_429']:>6,}  {domain} rejections "
            f"{r[f'{domain}_rejected']:>5,}  rejections {r['rejected']:>5,}  ({r['seconds']} s)"
        )


def main() -> None:
    clinic = load_policy(ROOT / "policies" / "clinic-separate.yaml").policy
    day = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    results: dict[str, Any] = {}
    for rule in RULES:
        results[rule] = _rule(clinic, day, rule, "xray")
        _print(rule, results[rule], "xray", f"clinic day, {rule}")
    azure = load_policy(ROOT / "policies" / "azure-one-pool.yaml").policy
    traces = load_traffic(ROOT / "simulations" / "azure-traces.yaml")
    found = _rule(azure, traces, "quantum_requests", "coding", extra_s=600.0)
    found["note"] = (
        "no 429 to learn from: the provider's remaining requests (a slice's) fall below the "
        "reserve the whole minute would keep; answers' x-ratelimit-reset-* would teach the "
        "slice, but the simulator's Outcome.rate_limits carries no resets"
    )
    results["azure_quantum_requests"] = found
    _print("quantum_requests", found, "coding", "azure traces, quantum_requests")
    for rule, found in results.items():
        runs = found["runs"]
        print(
            f"accounting_mismatch {rule} upstream_429 before={runs['before']['upstream_429']} "
            f"after={runs['after']['upstream_429']} (matched {runs['matched']['upstream_429']}, "
            f"knows {runs['knows']['upstream_429']}; rejected before="
            f"{runs['before']['rejected']} after={runs['after']['rejected']} "
            f"knows={runs['knows']['rejected']})"
        )
    out = ROOT / "benchmarks" / "results" / "accounting_mismatch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
