"""Prompt caching: how many prompt tokens the provider serves from its cache.

OpenAI caches prompt prefixes for about five to ten minutes of inactivity (up to an hour off-peak),
for prompts of at least 1,024 tokens, in steps of 128 tokens, per organization. The model keeps
prefix hashes at every 128-token boundary (``128 * chars_per_token`` characters, the same
character estimate the limiter uses) and reports as cached the longest prefix seen before within
``ttl`` seconds, if that reaches 1,024 tokens. Passive: entries expire against the ``now`` given.

A request without text (the simulator's) can instead name a prefix it shares with others (its
domain's system prompt, of a stated number of tokens): :meth:`PromptCache.lookup_shared` applies
the same rules to that name. Such a prefix is followed by text no other request has, so what
can be cached is its whole 128-token blocks. One entry per prefix and model: a prefix is one
system prompt, of one length.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["PromptCache"]


class PromptCache:
    """Prefix hashes with their expiry times (seconds), at most ``max_entries`` of them, and
    named shared prefixes. ``match_text=False`` matches named prefixes only: the provider keeps
    such a cache for requests that name their prefix while text caching is off."""

    def __init__(
        self,
        ttl: float = 300.0,
        chars_per_token: float = 4.0,
        min_tokens: int = 1024,
        increment: int = 128,
        max_entries: int = 200_000,
        *,
        match_text: bool = True,
    ) -> None:
        self.ttl = ttl
        self.min_tokens = min_tokens
        self.increment = increment
        self.block = max(1, round(increment * chars_per_token))
        self.max_entries = max_entries
        self.match_text = match_text
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        # (prefix name, model) -> (expiry, whole blocks of it cached)
        self._shared: dict[tuple[str, str], tuple[float, int]] = {}

    def _prefixes(self, text: str) -> list[bytes]:
        """Hashes of the prefixes ending at each whole block of ``text``."""
        digest = hashlib.blake2b(digest_size=16)
        hashes = []
        for start in range(0, len(text) - self.block + 1, self.block):
            digest.update(text[start : start + self.block].encode())
            hashes.append(digest.copy().digest())
        return hashes

    def lookup(self, text: str, prompt_tokens: int, now: float) -> int:
        """Cached tokens for this prompt at ``now``; then remember its prefixes until now + ttl."""
        if prompt_tokens < self.min_tokens or not self.match_text:
            return 0
        prefixes = self._prefixes(text)
        hits = 0
        for key in prefixes:
            expiry = self._expiry.get(key)
            if expiry is None or expiry < now:
                break
            hits += 1
        for key in prefixes:
            self._expiry[key] = now + self.ttl
            self._expiry.move_to_end(key)
        self._trim(now)
        cached = min(hits * self.increment, prompt_tokens)
        return cached if cached >= self.min_tokens else 0

    def lookup_shared(
        self, name: str, model: str, prefix_tokens: int, prompt_tokens: int, now: float
    ) -> int:
        """Cached tokens at ``now`` for a prompt of ``prompt_tokens`` to ``model`` that starts
        with the prefix ``name`` of ``prefix_tokens`` tokens, as :meth:`lookup` would count its
        text: the prefix's whole blocks, if it was sent within ``ttl`` and they reach
        ``min_tokens``. Then remember it until now + ttl."""
        if prompt_tokens < self.min_tokens:
            return 0
        blocks = min(prefix_tokens, prompt_tokens) // self.increment
        key = (name, model)
        seen = self._shared.get(key)
        hits = min(seen[1], blocks) if seen is not None and seen[0] >= now else 0
        self._shared[key] = (now + self.ttl, blocks)
        cached = hits * self.increment
        return cached if cached >= self.min_tokens else 0

    def _trim(self, now: float) -> None:
        """Drop expired entries from the oldest end, and the oldest beyond ``max_entries``."""
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry >= now and len(self._expiry) <= self.max_entries:
                return
            del self._expiry[key]
