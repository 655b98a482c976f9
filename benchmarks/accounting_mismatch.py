"""What a wrong accounting assumption costs: the clinic day when OpenAI keeps unused max_tokens.

The policy (``policies/clinic-separate.yaml``) is told to assume that the unused part of
``max_tokens`` comes back when a response completes (``provider: {refund_unused: true}``),
while the simulated provider keeps it (``refund_unused: false``): the engine believes it has more
room than it does. Three runs of the clinic day (``simulations/clinic-day.yaml``, seed 0):

- matched: the provider gives unused tokens back, as assumed (the prediction the user expects);
- before: the mismatch, with the engine as it was before issue 13 (it goes on giving unused
  tokens back to its own view of the limits whatever the 429s say);
- after: the mismatch, with the engine as it is (a 429 on a token limit stops those refunds for
  that limit, so it converges on the provider's count).

It prints the upstream 429s and the x-ray rejections of each, and one line with the 429s before
and after. Writes ``benchmarks/results/accounting_mismatch.json``. A few minutes in plain Python.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keypolicy.core.admission import Admission
from keypolicy.policy import load_policy
from keypolicy.policy.model import Policy, ProviderAccounting
from keypolicy.sim.run import run_once
from keypolicy.sim.traffic import Traffic, load_traffic
from keypolicy.upstream import Accounting

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _refunds_never_stop() -> Iterator[None]:
    """The engine before the fix: whatever a 429 says, unused tokens keep coming back."""
    learn: Callable[..., None] = Admission.after_rate_limit

    def after_rate_limit(self: Admission, *args: Any) -> None:
        refunds = list(self._refunds)
        learn(self, *args)
        self._refunds[:] = refunds

    Admission.after_rate_limit = after_rate_limit  # type: ignore[method-assign]
    try:
        yield
    finally:
        Admission.after_rate_limit = learn  # type: ignore[method-assign]


def _run(policy: Policy, traffic: Traffic, provider_refunds: bool) -> dict[str, Any]:
    begin = time.perf_counter()
    accounting = Accounting.from_policy(policy).with_rule("refund_unused", provider_refunds)
    summary = run_once(policy, traffic, 0, extra_s=3600.0, accounting=accounting).summary
    return {
        "upstream_429": summary["totals"]["upstream_429"],
        "xray_rejected": summary["domains"]["xray"]["rejected"],
        "rejected": summary["totals"]["rejected"],
        "seconds": round(time.perf_counter() - begin, 1),
    }


def main() -> None:
    loaded = load_policy(ROOT / "policies" / "clinic-separate.yaml").policy
    policy = loaded.model_copy(update={"provider": ProviderAccounting(refund_unused=True)})
    traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    results = {"matched": _run(policy, traffic, provider_refunds=True)}
    with _refunds_never_stop():
        results["before"] = _run(policy, traffic, provider_refunds=False)
    results["after"] = _run(policy, traffic, provider_refunds=False)
    for name, r in results.items():
        print(
            f"{name:8} upstream 429s {r['upstream_429']:>6,}  x-ray rejections "
            f"{r['xray_rejected']:>4,}  rejections {r['rejected']:>4,}  ({r['seconds']} s)"
        )
    before, after = results["before"]["upstream_429"], results["after"]["upstream_429"]
    print(f"accounting_mismatch upstream_429 before={before} after={after}")
    out = ROOT / "benchmarks" / "results" / "accounting_mismatch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
