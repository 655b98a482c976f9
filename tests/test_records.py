"""The one mapping from the engine's reasons to record outcomes, shared by both drivers."""

from __future__ import annotations

from typing import get_args

import pytest

from keypolicy.core import RejectReason
from keypolicy.records import OUTCOMES, Outcome, UsageRecord, outcome_of


def test_outcomes_are_the_literal_s_values() -> None:
    assert get_args(Outcome) == OUTCOMES
    assert OUTCOMES == ("ok", "upstream_429", "rejected", "deferred", "budget_exhausted", "error")


@pytest.mark.parametrize(
    ("reason", "status", "outcome"),
    [
        ("gave_up", 429, "upstream_429"),  # gave up after the provider's 429s
        ("gave_up", 503, "error"),
        ("gave_up", None, "error"),  # the connection was lost
        ("quota", 429, "error"),  # a quota 429 is no pace 429
        ("budget", None, "budget_exhausted"),
        ("store_error", None, "error"),
        ("cancelled", None, "rejected"),
        ("max_wait", None, "rejected"),
        ("too_large", None, "rejected"),
    ],
)
def test_outcome_of(reason: RejectReason, status: int | None, outcome: Outcome) -> None:
    assert outcome_of(reason, status) == outcome


@pytest.mark.parametrize("reason", get_args(RejectReason))
def test_every_reason_has_an_outcome(reason: RejectReason) -> None:
    assert outcome_of(reason) in OUTCOMES
    assert outcome_of(reason, 429) in OUTCOMES


def test_a_request_the_provider_refused_as_invalid_counts_as_rejected() -> None:
    # As the simulator has always recorded it (a 400 is the request's fault, not an outage).
    assert outcome_of("client_error", 400) == "rejected"


def test_a_record_carries_a_typed_outcome() -> None:
    record = UsageRecord(
        *["r1", "chat", "m", "k", "p", "c", 1.0, 1.5, 2.0, 0.5, 1, "ok", ""],
        10,
        0,
        5,
        0.001,
        False,
        False,
        "",
        10,
        5,
    )
    assert record.outcome in OUTCOMES
