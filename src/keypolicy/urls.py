"""Service URLs (Redis, PostgreSQL) printed without their passwords.

A password in a URL should be percent-encoded, but generated ones often hold ``/``, ``#``, ``?``
or ``@`` unencoded, which :func:`urllib.parse.urlsplit` then reads as the start of the path,
fragment or query: the password's tail would be shown as part of them. So the user information
is taken here as everything between ``://`` and the *last* ``@`` of the URL (over-masking a URL
whose path holds an ``@`` is the safe mistake), and a ``password`` query parameter is masked too.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

__all__ = ["check_userinfo", "mask_url", "url_passwords"]

_QUERY_PASSWORD = re.compile(r"([?&][^=&#]*password[^=&#]*=)([^&#]*)", re.IGNORECASE)


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme://, user information, @rest)``; the user information is "" when there is none."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url, "", ""
    userinfo, _, hosts = rest.rpartition("@")
    return head + sep, userinfo, "@" + hosts


def url_passwords(url: str) -> list[str]:
    """Every password ``url`` holds (user information, ``password=`` query parameters), in the
    forms a message may show them (as written, percent-encoded, decoded), longest first."""
    found = []
    _, userinfo, rest = _split(url)
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [m.group(2) for m in _QUERY_PASSWORD.finditer(rest or url)]
    forms = {form for text in found if text for form in (text, quote(text), unquote(text))}
    return sorted(forms, key=len, reverse=True)


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (``redis://:***@host:6379/0``)."""
    head, userinfo, rest = _split(url)
    if userinfo:
        user, colon, _ = userinfo.partition(":")
        url = f"{head}{user}{':***' if colon else ''}{rest}"
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + "***", url)


def check_userinfo(url: str) -> None:
    """Refuse a URL whose user information holds ``/``, ``?`` or ``#`` unencoded: a driver would
    read part of the password as the host or the path, and might echo that part. The message
    says what to do and shows the URL masked."""
    _, userinfo, _ = _split(url)
    if any(c in userinfo for c in "/?#"):
        raise ValueError(
            f"{mask_url(url)}: the password holds '/', '?' or '#': percent-encode them "
            "(%2F, %3F, %23) so that it is read as a password"
        )
