"""A streamed answer on its way to the caller: read as it passes, settled once when it ends."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

import httpx2

from keypolicy.estimate import count_tokens
from keypolicy.runtime.answers import StreamReader, Usage

if TYPE_CHECKING:
    from keypolicy.runtime.call import Call

__all__ = ["Streaming"]

# Headers that describe the body as it came off the wire; a stream reaches the caller decoded.
_WIRE_HEADERS: Final = ("content-encoding", "content-length", "transfer-encoding")


class Streaming:
    """A streamed answer on its way to the caller: read as it passes, settled when it ends.

    The transports wrap it in a byte stream that calls :meth:`feed` per chunk and :meth:`finish`
    once: at the end, on an error, or when the caller closes (or drops) the stream early. The
    usage comes from the stream's last chunk or event; without one, it is estimated (the prompt
    as counted, the text received so far) and the record says so.
    """

    def __init__(self, call: Call, response: httpx2.Response) -> None:
        self.call = call
        self.response = response
        self.reader = StreamReader(call.hide_usage)
        self._lock = threading.Lock()
        self._finished = False

    def headers(self) -> list[tuple[str, str]]:
        """The response's headers for the caller (the stream is passed on decoded)."""
        return [
            (k, v) for k, v in self.response.headers.multi_items() if k.lower() not in _WIRE_HEADERS
        ]

    def feed(self, chunk: bytes) -> bytes:
        """A chunk from the provider; what passes on to the caller."""
        return self.reader.feed(chunk)

    def rest(self) -> bytes:
        """What is left at the end of the stream."""
        return self.reader.rest()

    def finish(self, why: str | None) -> None:
        """Settle the attempt, once. ``why``: how the stream ended early, or None at its end.

        Without a usage chunk, the estimate is the prompt as counted, and for the completion:
        the text received, for a stream that ended; for one that ended early (closed, dropped,
        broken), what the call held (``max_tokens`` × ``n``, if it named one): the provider
        may have gone on generating, and a budget had better count too much than too little.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
        reader, call = self.reader, self.call
        estimated = reader.usage is None
        usage = reader.usage
        if usage is None:
            completion = count_tokens("".join(reader.text), call.estimate.model)
            if why is not None and call.estimate.max_output_tokens:
                completion = max(completion, call.estimate.max_output_tokens * call.estimate.n)
            usage = Usage(call.estimate.prompt_tokens, 0, completion)
            why = why or "the stream carried no usage"
        call.settle(usage, self.response.headers, estimated, why or "")

    def dropped(self) -> None:
        """The stream was dropped unread (a finalizer): settle it soon, off this moment, which
        may come while the engine's lock is held."""
        if not self._finished:
            self.call.context.conductor.soon(
                lambda: self.finish("the stream was dropped before its end")
            )

    @property
    def finished(self) -> bool:
        """Whether the attempt was settled."""
        return self._finished
