"""Human units of the policy language: durations, rates, token counts, money and shares.

Each parser takes what YAML produced (a number or a string) and returns a plain number in the
unit the rest of keypolicy works in: seconds, events per second, tokens, US dollars, fractions.
Errors are ``ValueError`` with a message that says what was expected, so that pydantic can
report them at the right place in the policy file.
"""

from __future__ import annotations

import re

__all__ = [
    "format_duration",
    "parse_count",
    "parse_duration",
    "parse_money",
    "parse_rate",
    "parse_share",
]

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)")
_COUNT = re.compile(r"^(\d[\d_,]*(?:\.\d+)?)\s*([kKmM]?)$")
_COUNT_SUFFIX = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}
_RATE_PER = {
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def _number(value: object, what: str) -> float | None:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {what}, got {type(value).__name__}")
    return None


def parse_duration(value: object) -> float:
    """Parse ``5s``, ``500ms``, ``1m30s``, ``6h``, ``2d`` or a number of seconds; return seconds."""
    what = "a duration such as 500ms, 5s, 1m30s or 6h"
    number = _number(value, what)
    if number is None:
        text = str(value).strip().replace(" ", "")
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"'{value}' is not {what}")
        number = total
    if number < 0:
        raise ValueError(f"a duration cannot be negative ({value})")
    return number


def format_duration(seconds: float) -> str:
    """Render seconds the way a person writes them: ``250ms``, ``5s``, ``1m30s``, ``6h``."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    parts = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            whole = int(rest // size)
            parts.append(f"{whole}{unit}")
            rest -= whole * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def parse_count(value: object) -> int:
    """Parse a token or request count: ``800000``, ``800_000``, ``800,000``, ``800k``, ``2M``."""
    what = "a count such as 800000, 800_000, 800k or 2M"
    number = _number(value, what)
    if number is None:
        match = _COUNT.match(str(value).strip())
        if not match:
            raise ValueError(f"'{value}' is not {what}")
        number = float(match.group(1).replace("_", "").replace(",", ""))
        number *= _COUNT_SUFFIX[match.group(2)]
    if number < 0:
        raise ValueError(f"a count cannot be negative ({value})")
    if number != int(number):
        raise ValueError(f"a count must be a whole number ({value})")
    return int(number)


def parse_rate(value: object) -> float:
    """Parse ``1200/h``, ``20/s``, ``5000/min`` or ``2k/day``; return events per second.

    A bare number is taken as per second.
    """
    what = "a rate such as 1200/h, 20/min or 5/s"
    number = _number(value, what)
    if number is not None:
        if number < 0:
            raise ValueError(f"a rate cannot be negative ({value})")
        return number
    text = str(value).strip()
    count_text, sep, per = text.partition("/")
    if not sep or per.strip() not in _RATE_PER:
        raise ValueError(f"'{value}' is not {what}")
    try:
        count = parse_count(count_text.strip())
    except ValueError:
        raise ValueError(f"'{value}' is not {what}") from None
    return count / _RATE_PER[per.strip()]


def parse_money(value: object) -> float:
    """Parse ``$20``, ``$0.50``, ``20`` or ``1,500`` as US dollars."""
    what = "an amount in US dollars such as $20 or 20.5"
    number = _number(value, what)
    if number is None:
        text = str(value).strip().removeprefix("$").replace(",", "").replace("_", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"'{value}' is not {what}") from None
    if number < 0:
        raise ValueError(f"an amount cannot be negative ({value})")
    return number


def parse_share(value: object) -> float:
    """Parse ``20%`` or ``0.2`` as a fraction between 0 and 1."""
    what = "a share such as 20% or 0.2"
    number = _number(value, what)
    if number is None:
        text = str(value).strip()
        if not text.endswith("%"):
            raise ValueError(f"'{value}' is not {what}")
        try:
            number = float(text[:-1]) / 100
        except ValueError:
            raise ValueError(f"'{value}' is not {what}") from None
    if not 0 <= number <= 1:
        raise ValueError(f"a share must lie between 0% and 100% ({value})")
    return number
