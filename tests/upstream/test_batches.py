"""The Batch API model: times drawn from a seeded log-normal, expiry, and the queue limit."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.catalog import batch_queue_limit
from keypolicy.upstream import (
    BatchQueue,
    BatchSettings,
    Enqueued,
    Provider,
    ProviderSettings,
    QueueFull,
    UpstreamRequest,
)
from keypolicy.upstream.batches import EXPIRED_MESSAGE, batch_expired, derived_rng
from tests.upstream.conftest import limits

HOUR = 3600.0
TIER1_GPT4O: int = batch_queue_limit(1, "gpt-4o") or 0  # 90,000 (catalog.TIERS)


def queue(tier: int | None = 1, settings: BatchSettings | None = None, seed: int = 0) -> BatchQueue:
    return BatchQueue(settings or BatchSettings(), tier, "org-test", random.Random(seed))


def accepted(result: Enqueued | QueueFull) -> Enqueued:
    assert isinstance(result, Enqueued), result
    return result


def refused(result: Enqueued | QueueFull) -> QueueFull:
    assert isinstance(result, QueueFull), result
    return result


# -- how long a batch takes ---------------------------------------------------------------------


def test_the_draws_are_seeded() -> None:
    s = BatchSettings()
    first = [s.duration(random.Random(7)) for _ in range(3)]
    again = [s.duration(random.Random(7)) for _ in range(3)]
    assert first == again
    one = random.Random(7)
    assert len({s.duration(one) for _ in range(100)}) == 100  # a distribution, not a constant


@pytest.mark.parametrize(("median", "p95"), [(HOUR, 8 * HOUR), (600.0, 2 * HOUR)])
def test_quantiles_of_the_draws_are_the_settings(median: float, p95: float) -> None:
    s = BatchSettings(median=median, p95=p95)
    rng = random.Random(1)
    draws = sorted(s.duration(rng) for _ in range(40_000))
    assert statistics.median(draws) == pytest.approx(median, rel=0.04)
    assert draws[int(0.95 * len(draws))] == pytest.approx(p95, rel=0.06)
    past = sum(d > s.window for d in draws) / len(draws)
    assert past == pytest.approx(s.expire_share, abs=0.002)


def test_the_default_expires_a_few_batches_in_a_thousand() -> None:
    # Median 1 h, p95 8 h: about 0.6% of batches run past the 24 h window.
    assert BatchSettings().expire_share == pytest.approx(0.006, abs=0.001)


def test_a_fixed_delay_overrides_the_distribution() -> None:
    s = BatchSettings(delay=90.0)
    rng = random.Random(3)
    assert [s.duration(rng) for _ in range(3)] == [90.0] * 3
    assert s.expire_share == 0.0
    assert BatchSettings(delay=25 * HOUR).expire_share == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        {"median": 0.0},
        {"median": HOUR, "p95": HOUR / 2},
        {"window": 0.0},
        {"delay": -1.0},
    ],
)
def test_impossible_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"batch|window"):
        BatchSettings(**bad)


def test_a_batch_drawn_past_the_window_expires_at_its_end_with_its_share_done() -> None:
    q = queue(settings=BatchSettings(delay=30 * HOUR))
    batch = accepted(q.create({"gpt-4o": 1_000}, 100.0))
    assert batch.expired
    assert batch.ends == 100.0 + 24 * HOUR
    assert batch.took == 30 * HOUR
    assert batch.done(10) == 8  # 24 h of its 30 h of work
    assert batch.done(1) == 0
    on_time = accepted(queue(settings=BatchSettings(delay=HOUR)).create({"gpt-4o": 1}, 0.0))
    assert (on_time.expired, on_time.ends, on_time.done(10)) == (False, HOUR, 10)


def test_an_expired_request_reads_as_the_batch_guide_shows() -> None:
    assert batch_expired() == {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    }
    assert EXPIRED_MESSAGE.endswith("window expired.")


# -- the queue ----------------------------------------------------------------------------------


def test_openai_wording_of_a_full_queue() -> None:
    # As openai/openai-python#2084 quotes the batch's error.
    full = QueueFull("gpt-4o-mini", "org-snq6hvcTYRCMyB87hjZjkoFr", 2_000_000, 1_990_000, 20_000)
    assert full.error() == {
        "code": "token_limit_exceeded",
        "line": None,
        "message": "Enqueued token limit reached for gpt-4o-mini in organization "
        "org-snq6hvcTYRCMyB87hjZjkoFr. Limit: 2,000,000 enqueued tokens. Please try again once "
        "some in_progress batches have been completed.",
        "param": None,
    }


def test_tokens_are_enqueued_until_the_batch_ends() -> None:
    q = queue(settings=BatchSettings(delay=HOUR))
    first = accepted(q.create({"gpt-4o": TIER1_GPT4O - 10_000}, 0.0))
    assert q.enqueued("gpt-4o", 1.0) == TIER1_GPT4O - 10_000
    full = refused(q.create({"gpt-4o": 20_000}, 10.0))
    assert (full.model, full.limit, full.enqueued, full.requested) == (
        "gpt-4o",
        TIER1_GPT4O,
        TIER1_GPT4O - 10_000,
        20_000,
    )
    assert q.enqueued("gpt-4o", 10.0) == TIER1_GPT4O - 10_000  # a refused batch holds nothing
    accepted(q.create({"gpt-4o": 10_000}, 20.0))  # exactly up to the limit
    assert q.enqueued("gpt-4o", first.ends) == 10_000  # the first completed: its tokens cleared
    accepted(q.create({"gpt-4o": 20_000}, first.ends))


def test_a_cancelled_batch_clears_its_tokens() -> None:
    q = queue(settings=BatchSettings(delay=HOUR))
    batch = accepted(q.create({"gpt-4o": TIER1_GPT4O}, 0.0))
    refused(q.create({"gpt-4o": 1}, 5.0))
    q.cancel(batch.id, 6.0)
    q.cancel(batch.id, 7.0)  # twice: nothing more
    assert q.enqueued("gpt-4o", 7.0) == 0
    accepted(q.create({"gpt-4o": 1}, 8.0))


def test_the_queue_is_per_model_family() -> None:
    q = queue(settings=BatchSettings(delay=HOUR))
    accepted(q.create({"gpt-4o-2024-08-06": TIER1_GPT4O}, 0.0))  # a snapshot counts as its family
    assert refused(q.create({"gpt-4o": 1}, 1.0)).model == "gpt-4o"
    accepted(q.create({"gpt-4o-mini": 1_000}, 1.0))  # another family has its own queue


def test_a_batch_over_any_of_its_models_limits_is_refused_whole() -> None:
    q = queue(settings=BatchSettings(delay=HOUR))
    full = refused(q.create({"gpt-4o-mini": 10, "gpt-4o": TIER1_GPT4O + 1}, 0.0))
    assert full.model == "gpt-4o"
    assert q.enqueued("gpt-4o-mini", 0.0) == 0


def test_no_limit_without_a_tier_or_a_published_figure() -> None:
    assert accepted(queue(tier=None).create({"gpt-4o": 10**12}, 0.0))
    assert accepted(queue(tier=1).create({"some-model": 10**12}, 0.0))


# Any sequence of creations, cancellations and time passing (times non-decreasing).
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("create"),
            st.sampled_from(["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini"]),
            st.integers(0, TIER1_GPT4O + 1_000),
        ),
        st.tuples(st.just("cancel"), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("wait"), st.integers(0, 3 * 3600), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps=_steps, seed=st.integers(0, 2**16))
def test_enqueued_tokens_never_pass_the_limit(
    steps: list[tuple[str, str | int, int]], seed: int
) -> None:
    q = queue(settings=BatchSettings(median=600.0, p95=6 * HOUR), seed=seed)
    now = 0.0
    open_: dict[int, Enqueued] = {}  # what a plain reading of the rules says is enqueued
    for kind, what, amount in steps:
        if kind == "wait":
            now += float(what)
        elif kind == "cancel":
            q.cancel(int(what), now)
            open_.pop(int(what), None)
        else:
            result = q.create({str(what): amount}, now)
            if isinstance(result, Enqueued):
                open_[result.id] = result
        open_ = {i: b for i, b in open_.items() if b.ends > now}
        for family, limit in (("gpt-4o", TIER1_GPT4O), ("gpt-4o-mini", None)):
            held = q.enqueued(family, now)
            assert held == sum(b.tokens.get(family, 0) for b in open_.values())
            if limit is not None:
                assert held <= limit


# -- in the provider ----------------------------------------------------------------------------


def test_the_provider_queues_by_its_organizations_tier() -> None:
    assert TIER1_GPT4O > 0
    lim = limits()
    assert lim.tier is None
    assert Provider(lim).batches.limit("gpt-4o") is None
    tiered = Provider(replace(lim, tier=1))
    assert tiered.batches.limit("gpt-4o") == TIER1_GPT4O
    assert tiered.batches.organization_id == "org-test"


def test_batches_leave_every_other_draw_as_it_was() -> None:
    request = UpstreamRequest("alpha", "gpt-4o-mini", prompt_tokens=10, max_output=500)

    def usages(with_batches: bool) -> list[int]:
        p = Provider(limits(), ProviderSettings(), random.Random(5))
        out = []
        for i in range(20):
            if with_batches:
                p.batches.create({"gpt-4o": 100}, float(i))
            out.append(p.usage(request, float(i)).completion_tokens)
        return out

    assert usages(True) == usages(False)


def test_a_derived_generator_is_its_own_and_the_same_every_time() -> None:
    parent = random.Random(11)
    a = derived_rng(parent, "batches")
    b = derived_rng(parent, "batches")
    assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]
    assert parent.random() == random.Random(11).random()  # nothing taken from the parent
    assert (
        derived_rng(random.Random(11), "other").random()
        != derived_rng(random.Random(11), "batches").random()
    )
