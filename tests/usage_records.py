"""Usage records made by hand, for the ledger, usage and Prometheus tests."""

from __future__ import annotations

from typing import Any

from keypolicy.records import UsageRecord

BASE: dict[str, Any] = {
    "domain": "chat",
    "model": "gpt-4o-mini",
    "key": "chat",
    "project": "main",
    "priority": "interactive",
    "submitted": 1_795_000_000.0,
    "started": 1_795_000_000.5,
    "finished": 1_795_000_002.0,
    "wait_s": 0.5,
    "attempts": 1,
    "outcome": "ok",
    "reason": "",
    "prompt_tokens": 800,
    "cached_tokens": 0,
    "completion_tokens": 150,
    "cost_usd": 0.0003,
    "batch": False,
    "deferred": False,
    "requested_model": "",
    "requested_prompt_tokens": 800,
    "requested_max_tokens": 300,
    "usage_estimated": False,
}


def make_record(request_id: str = "r1", **changes: Any) -> UsageRecord:
    """A record of a chat request answered ok, with ``changes`` applied."""
    return UsageRecord(request_id=request_id, **{**BASE, **changes})


def varied(count: int, prefix: str = "r") -> list[UsageRecord]:
    """``count`` records differing in every kind of field (a lost or mangled one shows)."""
    outcomes = ("ok", "upstream_429", "rejected", "deferred", "budget_exhausted", "error")
    return [
        make_record(
            f"{prefix}{i}",
            domain=("chat", "xray", "billing")[i % 3],
            key=f"key-{i % 4}",
            started=None if i % 5 == 0 else 1_795_000_000.25 + i,
            submitted=1_795_000_000.0 + i,
            finished=1_795_000_001.125 + i,
            wait_s=i / 8,
            attempts=1 + i % 3,
            outcome=outcomes[i % 6],
            reason="max_wait" if i % 6 == 2 else "",
            prompt_tokens=i * 7,
            cached_tokens=i % 11,
            completion_tokens=i * 3,
            cost_usd=i * 1e-5 + 0.1,
            batch=i % 7 == 0,
            deferred=i % 9 == 0,
            requested_model="gpt-4o" if i % 2 else "",
            usage_estimated=i % 4 == 0,
        )
        for i in range(count)
    ]
