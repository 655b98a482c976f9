"""Go duration strings, the format OpenAI writes waits and resets in.

OpenAI's ``x-ratelimit-reset-*`` headers and the "Please try again in ..." of a 429 use Go's
``time.Duration.String()`` at millisecond precision: ``84ms``, ``1.5s``, ``8.64s``, ``6m0s``,
``24h6m34s``. A duration under one second is written in milliseconds; from one second on, in hours,
minutes and seconds, leading zero units left out, seconds with up to three decimals.

Durations are rounded to the nearest millisecond, as OpenAI's are (its own example: Used 195869,
Requested 4412 of a 200,000 TPM limit is 84.3 ms, written ``84ms``), except that a positive
duration is never written as ``0s``: it becomes ``1ms``. A client that waits exactly the stated
time may therefore come back up to half a millisecond early, as with the real provider.
"""

from __future__ import annotations

import math

__all__ = ["go_duration", "milliseconds", "stated_seconds"]


def milliseconds(seconds: float) -> int:
    """``seconds`` in whole milliseconds, rounded to the nearest (ties up), at least 1 if > 0."""
    if seconds <= 0 or math.isnan(seconds):
        return 0
    if math.isinf(seconds):
        raise ValueError("an infinite wait has no Go duration")
    return max(1, math.floor(seconds * 1000 + 0.5))


def go_duration(seconds: float) -> str:
    """Format ``seconds`` as a Go duration at millisecond precision (``84ms``, ``6m0s``)."""
    ms = milliseconds(seconds)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def stated_seconds(seconds: float) -> float:
    """``seconds`` as a client reads them back from :func:`go_duration`'s text: the float that
    summing its parts gives (``84ms`` is 84 * 1e-3, ``6m0.5s`` is 6 * 60.0 + 0.5), so that
    numbers handed over without the text are the very numbers the text would have given."""
    ms = milliseconds(seconds)
    if ms < 1000:
        return ms * 1e-3
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = float(str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0"))
    if hours:
        return hours * 3600.0 + minutes * 60.0 + secs
    if minutes:
        return minutes * 60.0 + secs
    return secs
