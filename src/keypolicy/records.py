"""Usage records: one schema, whichever side wrote them (the simulator or the runtime).

Every request ends as one :class:`UsageRecord`. Reports, summaries and replays read records and
do not care who wrote them. Records are streamed to disk as they are made: CSV always, Parquet
when pyarrow is installed. Never a secret: keys appear by alias.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, get_args

if TYPE_CHECKING:  # a type only: records import nothing of the core at run time
    from keypolicy.core.actions import RejectReason

__all__ = [
    "FIELDS",
    "OPTIONAL",
    "OUTCOMES",
    "REQUESTED",
    "Outcome",
    "RecordWriter",
    "UsageRecord",
    "outcome_of",
]

Outcome = Literal["ok", "upstream_429", "rejected", "deferred", "budget_exhausted", "error"]
"""``ok``; ``upstream_429`` (gave up after the provider's 429s); ``rejected`` by the policy
(max_wait, too large, invalid for its model, model not allowed, cancelled...); ``deferred``
(still parked when the period ended); ``budget_exhausted``; ``error`` (the provider failed it
otherwise, or keypolicy's store did: nothing was sent)."""

OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
"""Every :data:`Outcome`, in order."""

_OUTCOME_OF: Final[dict[str, Outcome]] = {
    "budget": "budget_exhausted",
    "gave_up": "error",
    "batch_queue_full": "error",
    "batch_expired": "error",
    "quota": "error",
    "store_error": "error",
}


def outcome_of(reason: RejectReason, status: int | None = None) -> Outcome:
    """The record outcome of a request the engine rejected with ``reason`` (a ``Reject``'s
    ``reason`` and ``status``): ``upstream_429`` if it gave up after the provider's 429s,
    ``budget_exhausted``, ``error`` if the provider (or the store) failed it, else ``rejected``
    (the policy refused it, or the caller cancelled it)."""
    if reason == "gave_up" and status == 429:
        return "upstream_429"
    return _OUTCOME_OF.get(reason, "rejected")


@dataclass(frozen=True, slots=True, init=False)
class UsageRecord:
    """One request's life. Times are epoch seconds; tokens are counts; cost is USD.

    ``prompt_tokens``, ``cached_tokens`` and ``completion_tokens`` are what was used (0 for a
    request that got no answer); the ``requested_*`` fields are what the request asked for (the
    model it named, "" for its domain's; its prompt tokens; its max output tokens, 0 for none),
    so that records replay as traffic (``keypolicy simulate POLICY --trace RECORDS.csv``).
    ``usage_estimated`` is what only a live call can tell: the provider reported no usage (a
    stream without its usage chunk, a stream abandoned half read), so the tokens and cost are
    keypolicy's estimate. The simulator always knows its usage.
    """

    request_id: str
    domain: str
    model: str
    key: str
    project: str
    priority: str
    submitted: float
    started: float | None
    finished: float
    wait_s: float
    attempts: int
    outcome: Outcome
    reason: str  # "" if ok, else "<RejectReason>: <message>" (or why it was left open)
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: float
    batch: bool
    deferred: bool
    requested_model: str
    requested_prompt_tokens: int
    requested_max_tokens: int
    usage_estimated: bool = False

    def __init__(
        self,
        request_id: str,
        domain: str,
        model: str,
        key: str,
        project: str,
        priority: str,
        submitted: float,
        started: float | None,
        finished: float,
        wait_s: float,
        attempts: int,
        outcome: Outcome,
        reason: str,
        prompt_tokens: int,
        cached_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        batch: bool,
        deferred: bool,
        requested_model: str,
        requested_prompt_tokens: int,
        requested_max_tokens: int,
        usage_estimated: bool = False,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "project", project)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "submitted", submitted)
        object.__setattr__(self, "started", started)
        object.__setattr__(self, "finished", finished)
        object.__setattr__(self, "wait_s", wait_s)
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "cached_tokens", cached_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "cost_usd", cost_usd)
        object.__setattr__(self, "batch", batch)
        object.__setattr__(self, "deferred", deferred)
        object.__setattr__(self, "requested_model", requested_model)
        object.__setattr__(self, "requested_prompt_tokens", requested_prompt_tokens)
        object.__setattr__(self, "requested_max_tokens", requested_max_tokens)
        object.__setattr__(self, "usage_estimated", usage_estimated)


FIELDS: Final = tuple(f.name for f in dataclasses.fields(UsageRecord))
REQUESTED: Final = ("requested_model", "requested_prompt_tokens", "requested_max_tokens")
"""What a request asked for: record files written before these fields existed lack them."""
OPTIONAL: Final = (*REQUESTED, "usage_estimated")
"""Fields that record files written by earlier versions may lack."""

_ROW: Final = attrgetter(
    *FIELDS
)  # a record's values in FIELDS order (astuple deep-copies: 10x slower)


class RecordWriter:
    """Streams records to ``path`` (``.csv``, or ``.parquet`` with pyarrow) as they come."""

    CHUNK = 50_000

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._parquet = self.path.suffix == ".parquet"
        self._rows: list[UsageRecord] = []
        self._writer: Any = None
        self._file: TextIO | None = None
        if self._parquet:
            try:
                import pyarrow  # noqa: F401, PLC0415 - optional: only Parquet output needs it
            except ImportError:
                raise ValueError(
                    f"{self.path}: Parquet output needs pyarrow (pip install pyarrow), "
                    "or write .csv"
                ) from None
        else:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(FIELDS)

    def write(self, record: UsageRecord) -> None:
        """Add one record."""
        self.count += 1
        if self._parquet:
            self._rows.append(record)
            if len(self._rows) >= self.CHUNK:
                self._flush_parquet()
            return
        self._csv.writerow(_ROW(record))

    def _flush_parquet(self) -> None:
        import pyarrow as pa  # noqa: PLC0415 - optional dependency
        import pyarrow.parquet as pq  # noqa: PLC0415

        if not self._rows:
            return
        columns = {name: [getattr(r, name) for r in self._rows] for name in FIELDS}
        table = pa.table(columns)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), table.schema)
        self._writer.write_table(table)
        self._rows.clear()

    def close(self) -> None:
        """Finish the file."""
        if self._parquet:
            self._flush_parquet()
            if self._writer is not None:
                self._writer.close()
        elif self._file is not None:
            self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
