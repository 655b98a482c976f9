"""Requests the API refuses as invalid: exact bodies, the rule behind them, dated snapshots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keypolicy.catalog import CATALOG, SNAPSHOTS, family, model_info
from keypolicy.upstream import UpstreamRequest, errors
from keypolicy.upstream.validation import as_family, check_body, check_request
from tests.upstream.conftest import T0, provider, req

INVALID = "invalid_request_error"


def _error(model: str, prompt: int, most: int | None, endpoint: str = "chat.completions") -> object:
    request = UpstreamRequest("alpha", model, endpoint, prompt, most)  # type: ignore[arg-type]
    body = check_request(as_family(request))
    return None if body is None else body["error"]


# -- the bodies, word for word -----------------------------------------------------------------


def test_max_tokens_above_the_output_cap() -> None:
    assert _error("gpt-4o", 10, 20_000) == {
        "message": "max_tokens is too large: 20000. This model supports at most 16384 completion "
        "tokens, whereas you provided 20000.",
        "type": INVALID,
        "param": "max_tokens",
        "code": "invalid_value",
    }


def test_the_body_field_that_named_the_maximum_is_the_param() -> None:
    request = UpstreamRequest(
        "alpha",
        "gpt-4.1",
        prompt_tokens=5,
        max_output=40_000,
        max_output_param="max_completion_tokens",
    )
    body = check_request(request)
    assert body is not None
    assert body["error"]["param"] == "max_completion_tokens"
    assert body["error"]["message"].startswith("max_completion_tokens is too large: 40000. ")
    assert "at most 32768 completion tokens" in body["error"]["message"]
    responses = _error("gpt-4o-mini", 5, 16_385, "responses")
    assert isinstance(responses, dict)
    assert responses["param"] == "max_output_tokens"


def test_prompt_plus_max_tokens_above_the_context_window() -> None:
    assert _error("gpt-4o", 120_000, 10_000) == {
        "message": "This model's maximum context length is 128000 tokens. However, you requested "
        "130000 tokens (120000 in the messages, 10000 in the completion). Please reduce the "
        "length of the messages or completion.",
        "type": INVALID,
        "param": "messages",
        "code": "context_length_exceeded",
    }


def test_a_prompt_alone_above_the_window() -> None:
    assert _error("gpt-4o-mini", 130_000, None) == {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130000 tokens. Please reduce the length of the messages.",
        "type": INVALID,
        "param": "messages",
        "code": "context_length_exceeded",
    }
    assert _error("gpt-4o", 130_000, None, "responses") == {
        "message": "Your input exceeds the context window of this model. Please adjust your "
        "input and try again.",
        "type": INVALID,
        "param": "input",
        "code": "context_length_exceeded",
    }


def test_empty_messages_and_maxima_below_their_least() -> None:
    assert check_body("chat.completions", {"model": "gpt-4o", "messages": []}) == {
        "error": {
            "message": "Invalid 'messages': empty array. Expected an array with minimum length "
            "1, but got an empty array instead.",
            "type": INVALID,
            "param": "messages",
            "code": "empty_array",
        }
    }
    assert check_body("chat.completions", {"messages": [{}], "max_tokens": 0}) == {
        "error": {
            "message": "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
            "but got 0 instead.",
            "type": INVALID,
            "param": "max_tokens",
            "code": "integer_below_min_value",
        }
    }
    low = check_body("responses", {"input": "x", "max_output_tokens": 10})
    assert low is not None
    assert low["error"]["message"] == (
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
        "but got 10 instead."
    )
    assert check_body("chat.completions", {"messages": [{}], "max_completion_tokens": -1})
    assert check_body("chat.completions", {"messages": [{}], "max_tokens": 1}) is None
    assert check_body("responses", {"input": "x", "max_output_tokens": 16}) is None


def test_an_embeddings_input_above_the_window() -> None:
    one_long = {"model": "text-embedding-3-small", "input": ["short", "x" * 4 * 8_193]}
    assert check_body("embeddings", one_long) == {
        "error": {
            "message": "This model's maximum context length is 8192 tokens, however you requested "
            "8193 tokens (8193 in your prompt; 0 for the completion). Please reduce your prompt; "
            "or completion length.",
            "type": INVALID,
            "param": None,
            "code": None,
        }
    }
    many_short = {"model": "text-embedding-3-small", "input": ["x" * 4 * 8_000] * 5}
    assert check_body("embeddings", many_short) is None  # the window bounds each input
    tokens = {"model": "text-embedding-3-small", "input": [1] * 8_193}
    assert check_body("embeddings", tokens) is not None


def test_unknown_models_and_embeddings_are_not_checked_by_size() -> None:
    assert _error("my-model", 10**9, 10**9) is None
    assert _error("text-embedding-3-small", 100_000, None, "embeddings") is None


def test_the_unknown_model_body() -> None:
    assert errors.model_not_found("gpt-9") == {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": INVALID,
            "param": None,
            "code": "model_not_found",
        }
    }


# -- the rule ----------------------------------------------------------------------------------

GENERATING = sorted(m for m in [*CATALOG, *SNAPSHOTS] if CATALOG[family(m)].max_output > 0)
"""Every model the catalog knows that writes output, dated snapshots included."""


@given(
    model=st.sampled_from(GENERATING),
    prompt=st.integers(0, 1_200_000),
    most=st.none() | st.integers(0, 200_000),
)
def test_a_request_is_valid_iff_it_fits_the_window_and_the_cap(
    model: str, prompt: int, most: int | None
) -> None:
    info = model_info(model)
    assert info is not None
    fits = prompt + (most or 0) <= info.context_window
    valid = fits and (most is None or most <= info.max_output)
    assert (_error(model, prompt, most) is None) == valid


@given(prompt=st.integers(0, 200_000), most=st.integers(1, 40_000))
def test_the_provider_refuses_exactly_the_invalid_and_charges_nothing_for_them(
    prompt: int, most: int
) -> None:
    p = provider()
    out = p.submit(req("gpt-4o", prompt=prompt, max_output=most), T0)
    valid = most <= 16_384 and prompt + most <= 128_000
    if valid:
        assert out.status != 400
    else:
        assert (out.kind, out.status, out.ticket) == ("invalid_request", 400, None)
        assert out.error == check_request(req("gpt-4o", prompt=prompt, max_output=most))
        assert p.open_tickets == 0
        assert p.headers("alpha", "gpt-4o", T0)["x-ratelimit-remaining-requests"] == "10000"


# -- dated snapshots ---------------------------------------------------------------------------


def test_a_snapshot_is_served_on_its_familys_limits() -> None:
    p = provider()
    snapshot = p.submit(req("gpt-4o-2024-08-06", prompt=20_000, max_output=0), T0)
    assert snapshot.ok
    assert snapshot.headers["x-ratelimit-remaining-tokens"] == "10000"  # alpha's 30k gpt-4o TPM
    family_call = p.submit(req("gpt-4o", prompt=20_000, max_output=0), T0)
    assert family_call.kind == "rate_limited"  # the same bucket: 20k + 20k > 30k
    assert family_call.error is not None
    assert family_call.error["error"]["message"].startswith("Rate limit reached for gpt-4o in ")


def test_a_snapshot_has_its_familys_caps() -> None:
    p = provider()
    out = p.submit(req("gpt-4o-mini-2024-07-18", prompt=10, max_output=16_385), T0)
    assert out.status == 400
    assert out.error == errors.max_tokens_too_large("max_tokens", 16_385, 16_384)


def test_unknown_models_are_404_with_their_own_name() -> None:
    p = provider()
    for name in ("gpt-9", "gpt-4o-2099-01-01", "gpt-4.1-2025-04-14"):  # the last: no gpt-4.1 here
        out = p.submit(req(name, prompt=10, max_output=10), T0)
        assert (out.kind, out.status, out.error) == (
            "model_not_found",
            404,
            errors.model_not_found(name),
        )


def test_every_snapshot_belongs_to_a_catalog_family() -> None:
    for snapshot, name in SNAPSHOTS.items():
        assert name in CATALOG
        assert snapshot.startswith(name + "-")
        assert family(snapshot) == name
        assert model_info(snapshot) is CATALOG[name]
    assert family("gpt-4o-2024-05-13") == "gpt-4o-2024-05-13"  # priced apart: its own model
