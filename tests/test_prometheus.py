"""Prometheus counters: the ``usage`` numbers, counted as requests end."""

from __future__ import annotations

import importlib
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from keypolicy.prometheus import PrometheusMetrics
from tests.usage_records import make_record

WHO = {"domain": "chat", "key": "k1", "project": "main", "model": "gpt-4o-mini"}


def test_records_become_counters() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.record(make_record("a", key="k1", wait_s=0.2, cost_usd=0.25, cached_tokens=100))
    metrics.record(make_record("b", key="k1", wait_s=3.0, cost_usd=0.5, usage_estimated=True))
    metrics.record(make_record("c", key="k1", outcome="rejected", wait_s=9.0, prompt_tokens=0,
                               completion_tokens=0, cost_usd=0.0))
    metrics.retry("chat")
    metrics.retry("chat")
    metrics.rate_limited("chat", "main")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("keypolicy_requests_total", **WHO, outcome="ok") == 2
    assert value("keypolicy_requests_total", **WHO, outcome="rejected") == 1
    assert value("keypolicy_tokens_total", **WHO, kind="prompt") == 1600
    assert value("keypolicy_tokens_total", **WHO, kind="cached") == 100
    assert value("keypolicy_tokens_total", **WHO, kind="completion") == 300
    assert value("keypolicy_cost_usd_total", **WHO) == pytest.approx(0.75)
    assert value("keypolicy_wait_seconds_count", domain="chat") == 2  # ok requests only
    assert value("keypolicy_wait_seconds_bucket", domain="chat", le="0.25") == 1
    assert value("keypolicy_wait_seconds_sum", domain="chat") == pytest.approx(3.2)
    assert value("keypolicy_retries_total", domain="chat") == 2
    assert value("keypolicy_upstream_429_total", domain="chat", project="main") == 1
    assert value("keypolicy_usage_estimated_total", domain="chat") == 1
    text = generate_latest(registry).decode()
    assert 'keypolicy_requests_total{domain="chat",key="k1",model="gpt-4o-mini"' in text


def test_two_registries_do_not_clash() -> None:
    first, second = PrometheusMetrics(CollectorRegistry()), PrometheusMetrics(CollectorRegistry())
    first.retry("chat")
    second.retry("chat")


def test_without_prometheus_client_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "keypolicy.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'keypolicy\[prometheus\]'"):
        importlib.import_module("keypolicy.prometheus")
