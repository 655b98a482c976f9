"""Traffic for the simulator: the requests that arrive, from a synthetic profile or trace files.

A traffic source has a name, a wall-clock start, a duration and ``arrivals(seed)``: an iterator
of :class:`Arrival` sorted by time, generated lazily (a ten-million-request day is never held in
a list) and the same for the same seed. :func:`load_traffic` reads a YAML profile of either kind:

- synthetic (the language is :mod:`keypolicy.sim.profile`; :class:`SyntheticTraffic` draws it);
- ``kind: trace``: trace files (CSV, JSONL, Parquet) mapped onto domains
  (:mod:`keypolicy.sim.traces`); :func:`trace_arrivals` takes such files directly.

Every problem is reported at once, each as ``FILE:LINE:COL: what is wrong (what to do)``.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, ValidationError

from keypolicy.policy.errors import Issue, PolicyError
from keypolicy.policy.loader import _dotted, _fields_at, _issue_from_error
from keypolicy.policy.references import did_you_mean
from keypolicy.policy.source import SourceDoc, read_source
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.profile import DomainTraffic, Profile, Sizes

if TYPE_CHECKING:
    from keypolicy.sim.traces import TraceTraffic

__all__ = [
    "Arrival",
    "FasterTraffic",
    "SyntheticTraffic",
    "Traffic",
    "TrafficError",
    "load_traffic",
    "located_issues",
    "trace_arrivals",
    "traffic_warnings",
]

KINDS = ("synthetic", "trace")
_TRACE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet")
_M = TypeVar("_M", bound=BaseModel)
_CHUNK = 4096  # arrivals drawn per numpy call: large enough to be fast, small enough to stream
_SEED_MASK = (1 << 64) - 1


class Traffic(Protocol):
    """What the simulator consumes: see the module docstring."""

    @property
    def name(self) -> str:
        """Shown in reports and summaries."""

    @property
    def description(self) -> str:
        """One line for reports."""

    @property
    def start(self) -> datetime:
        """Wall-clock start of the simulated period (timezone-aware)."""

    @property
    def duration_s(self) -> float:
        """Length of the period in seconds; every arrival has ``0 <= time < duration_s``."""

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        """Arrivals sorted by time, generated lazily; the same seed gives the same arrivals."""

    def domains(self) -> set[str]:
        """The domains arrivals may name (every one must exist in the policy simulated)."""

    def models(self) -> dict[str, set[str]]:
        """The models arrivals name, by domain (a request naming none asks the domain's own);
        each must be one the policy lets its domain call."""


class TrafficError(Exception):
    """Traffic could not be read; ``issues`` lists every problem, each
    ``FILE:LINE:COL: what is wrong (what to do)``."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the traffic"
        return head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues)

    @classmethod
    def from_policy_error(cls, error: PolicyError) -> TrafficError:
        """The same problems, reported as traffic problems (YAML syntax, unreadable file)."""
        return cls([str(issue) for issue in error.issues])


def located_issues(doc: SourceDoc, error: ValidationError, root: type[BaseModel]) -> list[str]:
    """Pydantic's errors for ``doc`` validated as ``root``, each placed at its file:line:col.

    The same placement as policies get (see :mod:`keypolicy.policy.loader`); unknown fields are
    matched against ``root``'s own fields for the "did you mean" hint.
    """
    issues = []
    for err in error.errors(include_url=False):
        if err["type"] == "extra_forbidden":
            path = tuple(err["loc"])
            allowed = _fields_at(root, path[:-1])
            hint = did_you_mean(str(path[-1]), allowed) if allowed else "remove it"
            where = doc.locate(path, key=True)
            issue = Issue(where, _dotted(path), f"unknown field '{path[-1]}'", hint)
        else:
            issue = _issue_from_error(doc, err)
        issues.append(issue)
    return [str(i) for i in sorted(issues, key=Issue.sort_key)]


def validate_doc(doc: SourceDoc, root: type[_M]) -> _M:
    """Validate ``doc`` as ``root``; raise :class:`TrafficError` with located issues."""
    try:
        return root.model_validate(doc.data)
    except ValidationError as exc:
        raise TrafficError(located_issues(doc, exc, root)) from None


def load_traffic(path: str | Path, *, scale: float = 1.0) -> Traffic:
    """Read a traffic profile: a synthetic profile, or (``kind: trace``) a set of trace files.

    ``scale`` multiplies a synthetic profile's rates and burst sizes (``10`` for ten times the
    load); a trace replays what it recorded and takes only ``1``. Raises :class:`TrafficError`.
    """
    path = Path(path)
    if path.suffix.lower() in _TRACE_SUFFIXES:
        raise TrafficError(
            [
                f"{path}: this is a trace file, not a traffic profile (replay it as a trace: "
                "--trace FILE, or describe it in a YAML file with kind: trace)"
            ]
        )
    if scale <= 0:
        raise TrafficError([f"{path}: scale must be above 0, not {scale}"])
    try:
        doc = read_source(path, str(path))
    except PolicyError as exc:
        raise TrafficError.from_policy_error(exc) from None
    data: Any = doc.data
    if not isinstance(data, dict):
        raise TrafficError(
            [str(Issue(doc.locate(()), "", "a traffic profile is a mapping (version, name, ...)"))]
        )
    kind = data.get("kind", "synthetic")
    if kind == "trace":
        from keypolicy.sim.traces import load_trace_profile  # noqa: PLC0415 - traces imports us

        if scale != 1:
            raise TrafficError([f"{path}: a trace cannot be scaled; replay it as recorded"])
        return load_trace_profile(doc, path)
    if kind != "synthetic":
        what = f"'{kind}' is not one of: {', '.join(KINDS)}"
        issue = Issue(doc.locate(("kind",)), "kind", what, did_you_mean(str(kind), KINDS))
        raise TrafficError([str(issue)])
    return SyntheticTraffic(validate_doc(doc, Profile), scale=scale)


def trace_arrivals(
    paths: list[Path] | list[str],
    *,
    domain: str | None = None,
    columns: dict[str, str] | None = None,
    time_format: str = "auto",
    skip_bad_rows: bool = False,
    model: str | None = None,
    max_tokens: int | None = None,
    timezone: str = "UTC",
    start: datetime | None = None,
    name: str | None = None,
    description: str = "",
) -> TraceTraffic:
    """Traffic replayed from trace files (CSV, JSONL, or Parquet with pyarrow installed).

    ``columns`` maps the fields keypolicy needs (``timestamp``, ``domain``, ``model``,
    ``prompt_tokens``, ``max_tokens``, ``completion_tokens``) to the files' column names; fields
    not mapped are looked for under common names (``TIMESTAMP``, ``ContextTokens``,
    ``GeneratedTokens``, ``input_tokens``...). ``domain`` assigns one domain to every row;
    ``time_format`` is ``auto``, ``datetime``, ``seconds`` or ``milliseconds``; date-times
    without a zone are read in ``timezone``. Times count from the earliest timestamp across all
    files, and ``start`` (default: that timestamp) is the wall clock they are replayed at.
    ``max_tokens`` (tokens) is the requests' max_tokens when no column gives it; it defaults to
    each row's completion tokens. Rows that cannot be read raise :class:`TrafficError`, or with
    ``skip_bad_rows`` are skipped and counted in ``.skipped``. See :mod:`keypolicy.sim.traces`
    for how files are streamed.
    """
    from keypolicy.sim.traces import TraceSource, TraceTraffic  # noqa: PLC0415 - traces imports us

    sources = [
        TraceSource.make(
            Path(p),
            domain=domain,
            columns=columns or {},
            time_format=time_format,
            model=model,
            max_tokens=max_tokens,
        )
        for p in paths
    ]
    return TraceTraffic(
        sources,
        skip_bad_rows=skip_bad_rows,
        timezone=timezone,
        start=start,
        name=name,
        description=description,
    )


class FasterTraffic:
    """``traffic`` replayed ``factor`` times faster (``--speedup``): every arrival comes at its
    time divided by ``factor``, with what it asks unchanged, to stress a policy with real
    traffic. The wall clock it starts at stays; time-of-day rules (windows, daily budgets) see
    the compressed times."""

    def __init__(self, traffic: Traffic, factor: float) -> None:
        if not (factor > 0 and math.isfinite(factor)):
            raise TrafficError([f"a speedup must be a number above 0, not {factor}"])
        self.traffic, self.factor = traffic, factor
        self.name = f"{traffic.name}-x{factor:g}"
        self.description = f"{traffic.description}, replayed {factor:g} times faster"
        self.start = traffic.start
        self.duration_s = traffic.duration_s / factor

    def domains(self) -> set[str]:
        return self.traffic.domains()

    def models(self) -> dict[str, set[str]]:
        return self.traffic.models()

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        factor = self.factor
        for a in self.traffic.arrivals(seed):
            yield Arrival(
                a.time / factor,
                a.domain,
                a.prompt_tokens,
                a.max_output_tokens,
                a.completion_tokens,
                a.model,
                a.shared_prefix,
            )


def traffic_warnings(traffic: Traffic) -> list[str]:
    """What someone reading the results should know about how the traffic was read: trace rows
    skipped as unreadable, trace files that had to be sorted by time."""
    inner = traffic.traffic if isinstance(traffic, FasterTraffic) else traffic
    warnings = list(getattr(inner, "notes", ()))
    skipped = int(getattr(inner, "skipped", 0))
    if skipped:
        rows = int(getattr(inner, "rows", 0))
        warnings.append(
            f"{skipped:,} unreadable trace row{'s' if skipped != 1 else ''} skipped "
            f"({skipped / (rows + skipped):.1%} of the rows): the results leave them out"
        )
    for name in getattr(inner, "unsorted_files", ()):
        warnings.append(f"{name} is not sorted by time: its rows were sorted before the replay")
    return warnings


@dataclass(frozen=True)
class _Plan:
    """A domain's rate as piecewise-constant segments, and its bursts' occurrences."""

    starts: np.ndarray[Any, np.dtype[np.float64]]  # segment starts, seconds from the start
    rates: np.ndarray[Any, np.dtype[np.float64]]  # requests per second in each segment
    cum: np.ndarray[Any, np.dtype[np.float64]]  # expected arrivals before each segment
    total: float  # expected arrivals in the period (bursts aside)
    bursts: tuple[tuple[int, int, float], ...]  # (burst index, day index, offset in seconds)


class SyntheticTraffic:
    """Arrivals drawn from a :class:`~keypolicy.sim.profile.Profile`.

    - A domain's rate at time t is ``rate × shape[local hour of t]`` in the profile's time zone
      (a day with a daylight-saving change keeps its peak at the right wall-clock hour), times
      ``scale`` (10 for ten times the load; bursts are scaled too).
    - Arrivals are a renewal process of mean interval 1 (exponential for ``poisson``; gamma or
      balanced hyperexponential for ``bursty``) laid out in *operational time*: an arrival comes
      when the expected count since the start, ``Λ(t) = ∫ rate``, reaches the next point. This
      time change honours the shape exactly (the expected count of any hour is its rate times
      its length) and, unlike thinning, keeps a bursty process as bursty at 3 a.m. as at noon
      and wastes no draws.
    - A burst puts exactly ``requests`` arrivals uniformly at random over ``over`` from ``at``
      (every day of the period), drawn in order as uniform order statistics.
    - A domain's ``shared_prefix`` is added to every prompt size drawn for it (bursts too), and
      each arrival says how much of its prompt that prefix is.
    - Every draw comes from a numpy generator seeded with ``(seed, crc32(domain),
      crc32(stream))``: one stream for a domain's times, one for its sizes, one per burst and
      day. Adding a domain or changing its token sizes leaves the other streams' draws unchanged
      (common random numbers across policy variants and profile edits). Streams are drawn in
      chunks and merged lazily with :func:`heapq.merge`: memory does not grow with the period.
    """

    def __init__(self, profile: Profile, *, scale: float = 1.0) -> None:
        self.profile = profile
        self.scale = scale
        self.name = profile.name
        self.description = profile.description
        zone = ZoneInfo(profile.timezone) if profile.timezone else profile.start.tzinfo
        self.start: datetime = profile.start.astimezone(zone)
        self.duration_s: float = profile.duration
        self._plans = {name: self._plan(spec) for name, spec in profile.domains.items()}

    def domains(self) -> set[str]:
        """The profile's domains."""
        return set(self.profile.domains)

    def models(self) -> dict[str, set[str]]:
        """The models each domain's requests name (``None`` is left out: the domain's own)."""
        named = {}
        for name, spec in self.profile.domains.items():
            models = {spec.model, *(burst.model or spec.model for burst in spec.bursts)}
            named[name] = {m for m in models if m is not None}
        return named

    def expected_requests(self) -> dict[str, float]:
        """Expected arrivals per domain over the period, bursts included (bursts cut short by
        the end of the period are counted whole)."""
        return {
            name: plan.total + sum(self._burst_size(name, b) for b, _, _ in plan.bursts)
            for name, plan in self._plans.items()
        }

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        """Arrivals of every domain, sorted by time; the same ``seed`` gives the same ones."""
        streams: list[tuple[float, Iterator[Arrival]]] = []
        for name in sorted(self._plans):
            plan = self._plans[name]
            streams.append((0.0, self._steady(name, plan, seed)))
            streams += [(at, self._burst(name, b, day, at, seed)) for b, day, at in plan.bursts]
        return _merge_when_due(streams)

    # ------------------------------------------------------------------ planning

    def _plan(self, spec: DomainTraffic) -> _Plan:
        t0 = self.start.timestamp()
        grid = 900.0  # every UTC offset in use is a multiple of 15 minutes: hours change on it
        first = math.ceil(t0 / grid) * grid - t0
        edges = np.unique(np.concatenate(([0.0], np.arange(first, self.duration_s, grid))))
        peak = spec.peak_rate() * self.scale
        starts: list[float] = []
        rates: list[float] = []
        for edge in edges.tolist():
            rate = peak * spec.shape[datetime.fromtimestamp(t0 + edge, self.start.tzinfo).hour]
            if not rates or rate != rates[-1]:
                starts.append(edge)
                rates.append(rate)
        ends = np.append(np.array(starts[1:]), self.duration_s)
        amounts = np.array(rates) * (ends - np.array(starts))
        cum = np.concatenate(([0.0], np.cumsum(amounts)[:-1]))
        return _Plan(
            np.array(starts), np.array(rates), cum, float(amounts.sum()), self._occurrences(spec)
        )

    def _occurrences(self, spec: DomainTraffic) -> tuple[tuple[int, int, float], ...]:
        """Each burst on each local day of the period: (burst index, day index, offset s)."""
        first = self.start.date()
        days = ((self.start + timedelta(seconds=self.duration_s)).date() - first).days + 1
        found = []
        for b, burst in enumerate(spec.bursts):
            for day in range(days):
                clock = time(int(burst.at // 3600), int(burst.at % 3600 // 60), int(burst.at % 60))
                when = datetime.combine(first + timedelta(days=day), clock, self.start.tzinfo)
                offset = when.timestamp() - self.start.timestamp()
                if 0 <= offset < self.duration_s:
                    found.append((b, day, offset))
        return tuple(found)

    def _burst_size(self, name: str, b: int) -> int:
        return max(1, round(self.profile.domains[name].bursts[b].requests * self.scale))

    # ------------------------------------------------------------------ drawing

    def _steady(self, name: str, plan: _Plan, seed: int) -> Iterator[Arrival]:
        spec = self.profile.domains[name]
        times_rng, sizes_rng = _rng(seed, name, "times"), _rng(seed, name, "sizes")
        op, latest = 0.0, 0.0  # operational time of the last draw; latest time yielded
        while plan.total > 0:
            points = op + np.cumsum(spec.process.intervals(times_rng, _CHUNK))
            op = float(points[-1])
            points = points[points < plan.total]
            seg = np.searchsorted(plan.cum, points, side="right") - 1
            times = plan.starts[seg] + (points - plan.cum[seg]) / plan.rates[seg]
            # Rounding at segment edges must neither unsort nor step past the end.
            times = np.maximum.accumulate(np.clip(times, latest, _before(self.duration_s)))
            if times.size:
                latest = float(times[-1])
                yield from _emit(times, name, spec, spec, sizes_rng)
            if points.size < _CHUNK:
                return

    def _burst(self, name: str, b: int, day: int, at: float, seed: int) -> Iterator[Arrival]:
        spec = self.profile.domains[name]
        burst = spec.bursts[b]
        rng = _rng(seed, name, f"burst:{b}:{day}")
        n, done, acc = self._burst_size(name, b), 0, 0.0
        while done < n:
            # Uniform order statistics in order: log(1 - U(k)) = sum_j<k log(V_j) / (n - j).
            m = min(_CHUNK, n - done)
            steps = np.log1p(-rng.random(m)) / (n - done - np.arange(m))
            logs = acc + np.cumsum(steps)
            acc, done = float(logs[-1]), done + m
            times = at + burst.over * -np.expm1(logs)
            times = times[times < self.duration_s]
            yield from _emit(times, name, burst, spec, rng)
            if times.size < m:
                return


def _merge_when_due(streams: list[tuple[float, Iterator[Arrival]]]) -> Iterator[Arrival]:
    """Merge sorted streams by time, each ``(earliest, stream)`` started only when the merge
    reaches ``earliest`` (no arrival of it comes sooner).

    The order is ``heapq.merge``'s (time, then the stream's place in the list), but a stream
    costs nothing until it is due: a profile of many days does not draw every day's bursts up
    front.
    """
    due = sorted(((at, index) for index, (at, _) in enumerate(streams)), reverse=True)
    heap: list[tuple[float, int, Arrival]] = []

    def start(index: int) -> None:
        first = next(streams[index][1], None)
        if first is not None:
            heapq.heappush(heap, (first.time, index, first))

    while heap or due:
        while due and (not heap or due[-1][0] <= heap[0][0]):
            start(due.pop()[1])
        if not heap:
            continue
        _, index, arrival = heap[0]
        yield arrival
        following = next(streams[index][1], None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following.time, index, following))


def _before(limit: float) -> float:
    return math.nextafter(limit, -math.inf)


def _rng(seed: int, domain: str, stream: str) -> np.random.Generator:
    words = [seed & _SEED_MASK, zlib.crc32(domain.encode()), zlib.crc32(stream.encode())]
    return np.random.default_rng(np.random.SeedSequence(words))


def _emit(
    times: np.ndarray[Any, np.dtype[np.float64]],
    name: str,
    sizes: Sizes,
    domain: DomainTraffic,
    rng: np.random.Generator,
) -> Iterator[Arrival]:
    n = times.size
    prompt = sizes.prompt_tokens or domain.prompt_tokens
    maximum = sizes.max_tokens or domain.max_tokens
    completion = sizes.completion_tokens or domain.completion_tokens
    assert prompt is not None  # a domain's sizes are required, checked on the way in
    assert maximum is not None
    prefix = domain.shared_prefix
    prompts = (prompt.sample(rng, n) + prefix).tolist()
    maxima = np.maximum(maximum.sample(rng, n), 1)  # a request asks for one token at least
    completions: Any = repeat(None)
    if completion is not None:
        completions = np.minimum(completion.sample(rng, n), maxima).tolist()
    model = sizes.model or domain.model
    for t, p, m, c in zip(times.tolist(), prompts, maxima.tolist(), completions, strict=False):
        yield Arrival(t, name, p, m, c, model, prefix)
