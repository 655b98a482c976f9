"""Who is calling: a bearer key is accepted if one of the policy's keys names it.

Each policy key names an environment variable (``keys.<alias>.env``); the secret found there,
when the server starts, is accepted and charged to that key's project. Anything else is refused
with OpenAI's 401. Secrets stay in this object: logs and answers name the alias, never the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from keypolicy.policy.model import Policy
from keypolicy.upstream import errors

__all__ = ["Caller", "KeyRing"]

log = logging.getLogger("keypolicy.mock")


@dataclass(frozen=True, slots=True)
class Caller:
    """An accepted key: its alias in the policy and the project it is charged to."""

    alias: str
    project: str


class KeyRing:
    """The secrets the server accepts, each mapped to its caller."""

    def __init__(self, secrets: Mapping[str, Caller]) -> None:
        self._callers = dict(secrets)

    @classmethod
    def from_policy(cls, policy: Policy, environ: Mapping[str, str]) -> KeyRing:
        """Read every key's secret from ``environ``; a key whose variable is unset is skipped."""
        secrets: dict[str, Caller] = {}
        for alias, key in policy.keys.items():
            secret = environ.get(key.env, "")
            if not secret:
                log.warning(
                    "key %s: environment variable %s is not set; not accepted", alias, key.env
                )
            elif secret in secrets:
                log.warning("key %s has the same secret as key %s", alias, secrets[secret].alias)
            else:
                secrets[secret] = Caller(alias, key.project)
        return cls(secrets)

    @property
    def aliases(self) -> list[str]:
        """Aliases of the accepted keys."""
        return sorted(c.alias for c in self._callers.values())

    def identify(self, authorization: str | None) -> Caller | errors.ErrorBody:
        """The caller of an ``Authorization`` header, or the 401 body to answer with."""
        if not authorization:
            return errors.missing_api_key()
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return errors.missing_api_key()
        caller = self._callers.get(secret.strip())
        return caller if caller is not None else errors.invalid_api_key()
