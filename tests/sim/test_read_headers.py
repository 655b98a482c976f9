"""The simulator hands the engine the provider model's rate-limit numbers instead of writing its
headers out as text for the engine to parse back. Decisions may differ by nothing: what the
engine would read from the headers is exactly those numbers, whatever the buckets hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.core.headers import parse_rate_limit_headers
from keypolicy.sim.driver import _read
from keypolicy.upstream import UpstreamRequest
from tests.upstream.conftest import T0, provider

MODELS = ("gpt-4o-mini", "gpt-4o", "big", "text-embedding-3-small")


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(("alpha", "beta")),
            st.sampled_from(MODELS),
            st.integers(0, 40_000),  # prompt tokens
            st.integers(0, 8_000),  # max output tokens
            st.floats(0.0, 5.0),  # seconds since the previous request
        ),
        min_size=1,
        max_size=40,
    )
)
def test_numbers_read_as_the_headers_read(
    steps: list[tuple[str, str, int, int, float]],
) -> None:
    model = provider()
    textless = provider()  # as the simulator runs it: no header text on a success
    textless.header_text = False
    now, answered = T0, 0
    for project, name, prompt, most, gap in steps:
        now += gap
        request = UpstreamRequest(project, name, prompt_tokens=prompt, max_output=most)
        out = model.submit(request, now)
        bare = textless.submit(request, now)
        # The same answer in every respect but the text of a success's headers.
        assert (bare.kind, bare.status, bare.error, bare.usage, bare.timing, bare.ticket) == (
            out.kind,
            out.status,
            out.error,
            out.usage,
            out.timing,
            out.ticket,
        )
        assert (bare.hit, bare.rate_limits) == (out.hit, out.rate_limits)
        assert bare.headers == ({} if out.ok else out.headers)
        if out.rate_limits is None:
            continue
        answered += 1
        assert _read(out.rate_limits) == parse_rate_limit_headers(out.headers), out.headers
        if out.ticket is not None and gap > 2.0:
            model.settle(out.ticket, now)
            textless.settle(out.ticket, now)


def test_every_answer_with_usage_carries_them() -> None:
    model = provider()
    out = model.submit(UpstreamRequest("alpha", "gpt-4o", prompt_tokens=100, max_output=50), T0)
    assert out.ok
    assert out.rate_limits == (10000.0, 30000.0, 9999.0, 29850.0, 0.006, 0.3)
    refused = model.submit(UpstreamRequest("alpha", "gpt-4o", prompt_tokens=40_000), T0)
    assert refused.status == 429
    assert refused.rate_limits is None  # a 429's headers are parsed
