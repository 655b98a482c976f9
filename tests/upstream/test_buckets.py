"""The arithmetic of one continuously refilled bucket, on a fake clock."""

from __future__ import annotations

import math

import pytest

from keypolicy.upstream import Bucket


def test_leaks_at_limit_per_window() -> None:
    b = Bucket.create(600, 60.0, now=0.0, unit=False)
    assert (b.capacity, b.rate) == (600.0, 10.0)
    b.draw(300, 0.0)
    assert b.used(0.0) == 300
    assert b.used(10.0) == pytest.approx(200)
    assert b.used(100.0) == 0


def test_fits_wait_remaining_reset() -> None:
    b = Bucket.create(600, 60.0, now=0.0, unit=False)
    b.draw(550, 0.0)
    assert b.fits(50, 0.0)
    assert not b.fits(51, 0.0)
    assert b.wait(100, 0.0) == pytest.approx(5.0)  # (550 + 100 - 600) / 10
    assert b.wait(50, 0.0) == 0.0
    assert b.remaining(0.0) == 50
    assert b.reset(0.0) == pytest.approx(55.0)  # 550 / 10 until empty again
    assert b.reset(60.0) == 0.0


def test_quantum_shrinks_capacity_not_rate() -> None:
    b = Bucket.create(60_000, 60.0, now=0.0, quantum=1.0, unit=True)
    assert (b.capacity, b.rate) == (1000.0, 1000.0)
    b.draw(1000, 0.0)
    assert not b.fits(1, 0.0)
    assert b.wait(1, 0.0) == pytest.approx(0.001)
    assert b.shown_used(0.0) == pytest.approx(60_000)  # shifted so that the message adds up


def test_quantized_request_bucket_holds_at_least_one() -> None:
    b = Bucket.create(30, 60.0, now=0.0, quantum=1.0, unit=True)
    assert b.capacity == 1.0
    tokens = Bucket.create(30, 60.0, now=0.0, quantum=1.0, unit=False)
    assert tokens.capacity == pytest.approx(0.5)


def test_too_large_and_zero_limit() -> None:
    b = Bucket.create(100, 60.0, now=0.0, unit=False)
    assert b.too_large(101)
    assert not b.too_large(100)
    zero = Bucket.create(0, 60.0, now=0.0, unit=True)
    assert zero.too_large(1)
    assert zero.wait(1, 0.0) == math.inf


def test_correction_never_goes_below_empty() -> None:
    b = Bucket.create(600, 60.0, now=0.0, unit=False)
    b.draw(100, 0.0)
    b.correct(-40, 1.0)
    assert b.used(1.0) == pytest.approx(50)  # 100 - 10 leaked - 40 given back
    b.correct(-1000, 2.0)
    assert b.used(2.0) == 0


def test_time_running_backwards_counts_as_none() -> None:
    b = Bucket.create(600, 60.0, now=10.0, unit=False)
    b.draw(100, 10.0)
    assert b.used(5.0) == 100
    b.draw(10, 5.0)
    assert b.used(10.0) == 110
