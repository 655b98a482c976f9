"""Reading the provider's answers: the usage a response reports, in a body or in a stream.

Sans-I/O: bytes in, numbers out. Chat completions and embeddings report ``prompt_tokens`` /
``completion_tokens`` (cached under ``prompt_tokens_details``); the Responses API reports
``input_tokens`` / ``output_tokens`` (cached under ``input_tokens_details``). A streamed chat
completion reports usage in a last chunk with no choices when ``stream_options.include_usage``
is set; a streamed response in its ``response.completed`` (or ``.incomplete``, ``.failed``) event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["StreamReader", "Usage", "body_usage", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens an answer reports: prompt (of which cached) and completion."""

    prompt: int
    cached: int
    completion: int


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(answer: Any) -> Usage | None:
    """The usage an answer object (parsed JSON) reports, or ``None`` if it reports none."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage:  # the Responses API
        details = usage.get("input_tokens_details") or {}
        return Usage(
            _count(usage.get("input_tokens")),
            _count(details.get("cached_tokens")),
            _count(usage.get("output_tokens")),
        )
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        _count(usage.get("prompt_tokens")),
        _count(details.get("cached_tokens") if isinstance(details, dict) else 0),
        _count(usage.get("completion_tokens")),
    )


def body_usage(body: bytes) -> Usage | None:
    """The usage a JSON response body reports. Only the ``usage`` object is parsed (it comes
    last in OpenAI's answers), unless that fails: then the whole body."""
    at = body.rfind(b'"usage"')
    if at >= 0:
        start = body.find(b"{", at)
        if start >= 0 and not body[at + 7 : start].strip(b" \t\r\n:"):  # "usage": {
            try:
                usage, _ = _DECODER.raw_decode(body[start:].decode())
                return usage_of({"usage": usage})
            except ValueError:
                pass
    try:
        return usage_of(json.loads(body))
    except ValueError:
        return None


_DECODER: Final = json.JSONDecoder()


class StreamReader:
    """Reads server-sent events as they pass to the caller: the usage, and the text so far.

    ``hide_usage``: keypolicy added ``stream_options.include_usage`` itself, so the caller did not
    ask for the usage chunk and must not see it; it is taken out of the stream.
    """

    def __init__(self, hide_usage: bool) -> None:
        self.hide_usage = hide_usage
        self.usage: Usage | None = None
        self.text: list[str] = []
        self.finished = False  # the stream said it was done ([DONE] or a final event)
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        """Take ``chunk`` from the provider; return what passes on to the caller."""
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            end, size = self._boundary()
            if end < 0:
                break
            block, self._buffer = self._buffer[: end + size], self._buffer[end + size :]
            if self._keep(block):
                out.append(block)
        return b"".join(out)

    def rest(self) -> bytes:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip() and not self._keep(rest):
            return b""
        return rest

    def _boundary(self) -> tuple[int, int]:
        """Where the first whole event ends: at a blank line, whichever line ending the stream
        uses (LF, CRLF or CR); ``(-1, 0)`` if no event is whole yet."""
        buffer = self._buffer
        best, size = -1, 0
        for separator in (b"\n\n", b"\r\n\r\n", b"\r\r"):
            at = buffer.find(separator)
            if at >= 0 and (best < 0 or at < best):
                best, size = at, len(separator)
        return best, size

    def _keep(self, block: bytes) -> bool:
        """Read one event; whether it passes on to the caller."""
        data = b"\n".join(
            line[5:].strip() for line in block.splitlines() if line.startswith(b"data:")
        )  # splitlines: LF, CRLF and CR alike
        if data == b"[DONE]":
            self.finished = True
            return True
        try:
            event = json.loads(data) if data else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return True
        if isinstance(event.get("type"), str):  # the Responses API
            self._response_event(event)
            return True
        return self._chat_chunk(event)

    def _response_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.text.append(event["delta"])
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.usage = usage_of(event.get("response")) or self.usage
            self.finished = True

    def _chat_chunk(self, event: dict[str, Any]) -> bool:
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    self.text.append(delta["content"])
        usage = usage_of(event)
        if usage is None:
            return True
        self.usage = usage
        return not (self.hide_usage and not choices)  # the usage chunk keypolicy asked for
