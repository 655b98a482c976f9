"""Reading usage from answers and streams: the same result however the bytes are cut."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from keypolicy.runtime.answers import StreamReader, Usage, body_usage, usage_of

CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}


def _chat_stream(texts: list[str], newline: str, with_usage: bool) -> bytes:
    events = [{**CHUNK, "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    if with_usage:
        usage = {"prompt_tokens": 7, "completion_tokens": len(texts), "total_tokens": 7}
        events.append({**CHUNK, "choices": [], "usage": usage})
    end = newline * 2
    return ("".join(f"data: {json.dumps(e)}{end}" for e in events) + f"data: [DONE]{end}").encode()


def _read(data: bytes, cuts: list[int], hide: bool) -> tuple[bytes, StreamReader]:
    reader = StreamReader(hide_usage=hide)
    out, start = [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        out.append(reader.feed(data[start:cut]))
        start = cut
    out.append(reader.feed(data[start:]))
    out.append(reader.rest())
    return b"".join(out), reader


@given(
    texts=st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    hide=st.booleans(),
)
def test_a_stream_reads_the_same_however_it_is_cut(
    texts: list[str], cuts: list[int], newline: str, hide: bool
) -> None:
    data = _chat_stream(texts, newline, with_usage=True)
    passed, reader = _read(data, cuts, hide)
    assert reader.usage == Usage(7, 0, len(texts))
    assert "".join(reader.text) == "".join(texts)
    assert reader.finished
    if hide:  # exactly the usage chunk is gone, everything else passes byte for byte
        assert passed == _chat_stream(texts, newline, with_usage=False)
    else:
        assert passed == data


def test_responses_events_and_bodies() -> None:
    completed = {
        "type": "response.completed",
        "response": {
            "usage": {
                "input_tokens": 9,
                "output_tokens": 4,
                "input_tokens_details": {"cached_tokens": 2},
            }
        },
    }
    delta = {"type": "response.output_text.delta", "delta": "hi"}
    data = b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in (delta, completed)
    )
    passed, reader = _read(data, [5, 50], hide=True)
    assert passed == data
    assert reader.usage == Usage(9, 2, 4)
    assert reader.text == ["hi"]
    assert body_usage(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 1}}') == Usage(3, 0, 1)
    assert body_usage(b"not json") is None
    assert usage_of({"usage": None}) is None


_COUNTS = st.one_of(st.integers(min_value=-5, max_value=10**7), st.none(), st.text(max_size=3))


@given(
    usage=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"prompt_tokens": _COUNTS, "completion_tokens": _COUNTS},
            optional={"prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": _COUNTS})},
        ),
        st.fixed_dictionaries(
            {"input_tokens": _COUNTS, "output_tokens": _COUNTS},
            optional={"input_tokens_details": st.fixed_dictionaries({"cached_tokens": _COUNTS})},
        ),
    ),
    before=st.dictionaries(st.sampled_from(["id", "model", "x"]), st.text(max_size=5)),
    after=st.dictionaries(st.sampled_from(["y", "z"]), st.integers()),
    spaced=st.booleans(),
)
def test_reading_only_the_usage_object_reads_what_the_whole_body_says(
    usage: object, before: dict[str, str], after: dict[str, int], spaced: bool
) -> None:
    answer = {**before, "usage": usage, **after}
    body = json.dumps(answer, separators=(", ", ": ") if spaced else (",", ":")).encode()
    assert body_usage(body) == usage_of(json.loads(body))
