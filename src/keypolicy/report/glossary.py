"""The glossary printed at the end of every report: the terms it uses, in plain words."""

from __future__ import annotations

from typing import Final

__all__ = ["GLOSSARY"]

GLOSSARY: Final[list[tuple[str, str]]] = [
    ("Option", "One policy file compared with the others; the first given is taken as today's."),
    ("Function (domain)", "A part of the application that calls the model: diagnosis, chat..."),
    (
        "Key",
        "An API key. OpenAI shows usage per key and per project; a key belongs to one project.",
    ),
    (
        "Project",
        "OpenAI's unit of rate limits: every key of a project shares its limits, so more keys "
        "in one project add no capacity.",
    ),
    ("Pool", "The keys a function may use; keypolicy picks one per request."),
    ("RPM, TPM", "Requests and tokens per minute a project (or the organization) may use."),
    (
        "Reservation",
        "What a request is charged against TPM when it is admitted: its prompt plus its "
        "max_tokens. Tokens used are the prompt plus what the model actually wrote.",
    ),
    (
        "Priority class",
        "How urgent a function is (critical first). A class may have headroom reserved for it "
        "and a max_wait.",
    ),
    ("max_wait", "The longest a request of a class may wait for capacity before it is refused."),
    (
        "p95, p99 wait",
        "The wait that 95% (99%) of served requests stay within; refused requests are not in it.",
    ),
    (
        "Refused (rejected)",
        "A request that never reached the provider: no capacity within max_wait, or a budget "
        "spent.",
    ),
    ("Upstream 429", "A 'too many requests' answer from the provider; keypolicy retries it."),
    (
        "Deferred, Batch API",
        "Work that may wait: queued for spare capacity, or sent as a batch at half price.",
    ),
    ("Budget runway", "How many days of this traffic a budget lasts, against its period."),
    (
        "Headroom",
        "How much more traffic the option carries before the first critical request is refused.",
    ),
    (
        "Run, seed, 95% interval",
        "A run simulates the day once with one random seed; with several runs a number is their "
        "mean, ± the half-width of its 95% confidence interval.",
    ),
    (
        "Provider factor",
        "The share of the policy's limits the simulated provider grants (0.8: 20% less).",
    ),
]
