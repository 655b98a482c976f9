"""Stores for the state replicas share: in memory (one process), or in Redis (many).

``open_store(url)`` picks one by URL: ``None`` or ``"memory"`` for a
:class:`~keypolicy.state.memory.MemoryStore`; ``redis://``, ``rediss://`` or ``unix://`` for a
:class:`~keypolicy.state.redis.RedisStore` (needs ``pip install 'keypolicy[redis]'``; the
``redis`` package is imported only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keypolicy import urls
from keypolicy.state.memory import MemoryStore

if TYPE_CHECKING:
    from keypolicy.core.store import Store

__all__ = ["MemoryStore", "StoreUnavailable", "open_store"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class StoreUnavailable(Exception):  # noqa: N818 (says what happened, as ConnectionRefused does)
    """A shared store could not carry out a call: unreachable, too slow (its timeout), or it
    answered with an error. The one exception a shared store raises for its server's trouble.

    The call was applied at most once (never retried by the store); after a timeout it may have
    been applied. The engine reports it as a ``StoreFault`` action like any store failure. Its
    message never holds a password.
    """


def open_store(url: str | None, *, namespace: str = "default") -> Store:
    """The store ``url`` names: ``None`` or ``"memory"``: a new :class:`MemoryStore`;
    ``redis://``, ``rediss://``, ``unix://``: a
    :meth:`~keypolicy.state.redis.RedisStore.from_url` store in ``namespace`` (replicas that
    share limits use the same one: the organization, say). Anything else: ``ValueError``."""
    if url is None or url.strip().lower() in ("memory", "memory://"):
        return MemoryStore()
    from keypolicy.state.redis import RedisStore  # noqa: PLC0415 - only if asked for

    scheme = url.partition("://")[0].strip().lower() if "://" in url else ""
    if scheme in _REDIS_SCHEMES:
        return RedisStore.from_url(url.strip(), namespace=namespace)
    raise ValueError(
        f"unknown state store {urls.mask_url(url)!r}: expected 'memory', or a Redis URL "
        "(redis://host:6379/0, rediss://... for TLS, unix:///path/to/redis.sock)"
    )
