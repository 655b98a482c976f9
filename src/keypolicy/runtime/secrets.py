"""API keys: read from the environment by the policy's variable names, and never shown.

A policy names each key's environment variable, never its secret. The runtime reads the secrets
once, when it starts, and keeps them in a :class:`KeyRing` whose ``repr`` names aliases only.
The secrets go on the wire in the transport and nowhere else: the ``openai`` client itself holds a
placeholder, so its logs, errors and reprs cannot contain one. As a second line, every log record
made in the process is checked for a known secret (a log record factory, installed once): in its
message, its exception's text and its stack, a secret found is replaced by ``[key ALIAS]`` before
any handler sees it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from keypolicy.policy.model import Policy

__all__ = [
    "PLACEHOLDER",
    "KeyRing",
    "MissingKeysError",
    "environment",
    "read_env_file",
    "redact",
]

PLACEHOLDER: Final = "keypolicy-managed-key"
"""What the ``openai`` clients keypolicy makes hold as their api_key; the transport replaces it."""


class MissingKeysError(ValueError):
    """Keys of the policy whose environment variable is not set."""


class KeyRing:
    """The secrets of a policy's keys, by alias. Shows aliases, never a secret."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)
        _register(self._secrets)

    @classmethod
    def from_policy(cls, policy: Policy, environ: Mapping[str, str]) -> KeyRing:
        """Read every key's secret from ``environ``; all missing variables in one error."""
        missing = [
            f"key {alias!r}: environment variable {key.env} is not set"
            for alias, key in policy.keys.items()
            if not environ.get(key.env, "").strip()
        ]
        if missing:
            raise MissingKeysError(
                f"policy {policy.name!r}: "
                + "; ".join(missing)
                + " (set them in the service's environment, or pass env_file=... to read a "
                ".env file)"
            )
        return cls({alias: environ[key.env].strip() for alias, key in policy.keys.items()})

    def bearer(self, alias: str) -> str:
        """The ``Authorization`` header value for key ``alias``."""
        return f"Bearer {self._secrets[alias]}"

    def __contains__(self, alias: object) -> bool:
        return alias in self._secrets

    def __repr__(self) -> str:
        return f"KeyRing(aliases={sorted(self._secrets)})"

    def __reduce__(self) -> Any:
        raise TypeError("a KeyRing holds secrets and cannot be pickled")


def read_env_file(path: str | Path) -> dict[str, str]:
    """``NAME=value`` lines of a ``.env`` file (``#`` comments, optional ``export`` and quotes).

    Only read when asked (``env_file=``); values never appear in an error.
    """
    values: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, eq, value = line.partition("=")
        if not eq or not name.strip().isidentifier():
            raise ValueError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def environment(env_file: str | Path | None) -> dict[str, str]:
    """The process environment, with a ``.env`` file's values under it if one is given (the
    environment wins, as with docker and dotenv)."""
    return {**(read_env_file(env_file) if env_file is not None else {}), **os.environ}


# ---------------------------------------------------------------------- redaction in logs

_FORMATTER = logging.Formatter()
_lock = threading.Lock()
_known: dict[str, str] = {}  # secret -> alias
_installed = False


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``[key ALIAS]``."""
    for secret, alias in list(_known.items()):
        if secret in text:
            text = text.replace(secret, f"[key {alias}]")
    return text


def _register(secrets: Mapping[str, str]) -> None:
    global _installed  # noqa: PLW0603 - one factory per process, installed on first use
    with _lock:
        for alias, secret in secrets.items():
            if len(secret) >= 8:  # a short value is not a key, and would mangle every log line
                _known[secret] = alias
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _known:
                try:
                    message = record.getMessage()
                except Exception:  # a malformed record is logging's to report, not ours
                    return record
                clean = redact(message)
                if clean != message:
                    record.msg, record.args = clean, None
                if record.exc_info and not record.exc_text:
                    # Formatted now, once, as a formatter would; formatters use it as it is.
                    record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
                if record.stack_info:
                    record.stack_info = redact(record.stack_info)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
