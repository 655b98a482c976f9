"""Prompt caching: how many prompt tokens the provider serves from its cache.

OpenAI caches prompt prefixes for about five to ten minutes of inactivity (up to an hour off-peak),
for prompts of at least 1,024 tokens, in steps of 128 tokens, per organization. The model keeps
prefix hashes at every 128-token boundary (``128 * chars_per_token`` characters, the same
character estimate the limiter uses) and reports as cached the longest prefix seen before within
``ttl`` seconds, if that reaches 1,024 tokens. Passive: entries expire against the ``now`` given.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["PromptCache"]


class PromptCache:
    """Prefix hashes with their expiry times (seconds), at most ``max_entries`` of them."""

    def __init__(
        self,
        ttl: float = 300.0,
        chars_per_token: float = 4.0,
        min_tokens: int = 1024,
        increment: int = 128,
        max_entries: int = 200_000,
    ) -> None:
        self.ttl = ttl
        self.min_tokens = min_tokens
        self.increment = increment
        self.block = max(1, round(increment * chars_per_token))
        self.max_entries = max_entries
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

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
        if prompt_tokens < self.min_tokens:
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

    def _trim(self, now: float) -> None:
        """Drop expired entries from the oldest end, and the oldest beyond ``max_entries``."""
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry >= now and len(self._expiry) <= self.max_entries:
                return
            del self._expiry[key]
