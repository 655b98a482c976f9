"""Admissions per second and their latency on the Redis store, from 1 and 4 processes on
loopback, with the memory store beside it in the same run.

An admission here is what the engine asks of the store for one clinic request: the ``acquire``
of its buckets (the project's and the organization's RPM and TPM, and its budgets: five or six
buckets), then, when it is settled, the ``adjust`` of each budget hold to the cost. The calls are
recorded from an engine running ``policies/clinic-merged.yaml`` over its domains, and replayed
as they were (names, amounts, floors), with capacities and rates made a million times larger so
that no take is refused (a refusal writes nothing and is cheaper: this is the costly path).
Each process has its own store object (Redis: its own connection; memory: its own, unshared
state); all processes share one namespace, and so contend for the same keys, as replicas of one
service do. Caller time is the wall clock.

Cases:

- ``memory``: the MemoryStore, the floor of what a store can cost;
- ``redis``: the RedisStore, the store alone (one round trip for the take, one per budget
  settled); the issue's goals are for this: at least 5,000 admissions/s from 4 processes, median
  at most 0.5 ms;
- ``redis-engine-calls``: every store call the engine makes for that request, with the
  rate-limit headers of OpenAI's answer: its cooldowns (the store reads them once, then reuses
  them until one changes), the take, the settlement (the limits' corrections held back and
  carried by the budget's settlement): what an engine on Redis costs, about two round trips a
  request;
- ``redis-client-path``: the store sending its commands through redis-py's client
  (``execute_command``, as ``register_script``'s scripts do) instead of its own connections:
  what that choice saves;
- ``redis-no-hiredis`` (1 process): the store with redis-py's pure-Python reply parser, to show
  what hiredis brings.

Prints the figures and ratios and writes benchmarks/results/redis_state.json. Needs a Redis (by
default the one on 127.0.0.1:6379; its keys are deleted after, by namespace, never flushed).

    .venv/bin/python benchmarks/redis_state.py [--seconds S] [--url redis://...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keypolicy import _native
from keypolicy.core import Engine, Send, Settled, Submit
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore
from keypolicy.state.redis import RedisStore

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_000_000.0
SCALE = 1e6  # capacities and rates: no take is refused
DOMAINS = ["diagnosis", "xray", "treatment", "chat", "chat", "scheduling"]

# An answer's rate-limit headers, as OpenAI sends them (the engine corrects its levels by them).
HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9990",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-tokens": "1990000",
}
Bucket = tuple[str, float, float]  # name, capacity, rate (picklable for spawned workers)
Call = tuple[Any, ...]  # ("acquire", [Bucket], amounts, floors) | ("adjust", Bucket, delta) | ...


class Recorder(Store):
    """The memory store, writing down every call the engine makes."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        self.calls: list[Call] = []

    def acquire(self, buckets: Any, amounts: Any, floors: Any, now: float) -> float:
        got = self.memory.acquire(buckets, amounts, floors, now)
        refs = [(b.name, b.capacity, b.rate) for b in buckets]
        self.calls.append(("acquire", refs, list(amounts), list(floors), got))
        return got

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        self.calls.append(("adjust", (bucket.name, bucket.capacity, bucket.rate), delta))
        return self.memory.adjust(bucket, delta, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        self.calls.append(("clamp", (bucket.name, bucket.capacity, bucket.rate), level))
        self.memory.clamp(bucket, level, now)

    def levels(self, buckets: Any, now: float) -> list[float]:
        self.calls.append(("levels", [(b.name, b.capacity, b.rate) for b in buckets]))
        return self.memory.levels(buckets, now)

    def set_cooldown(self, name: str, until: float) -> None:
        self.calls.append(("set_cooldown", name, until - T0))
        self.memory.set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        self.calls.append(("cooldown", name))
        return self.memory.cooldown(name)

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        self.calls.append(("cooldowns", list(names)))
        return self.memory.cooldowns(names)

    def adjust_later(self, bucket: BucketRef, delta: float, now: float) -> None:
        self.calls.append(("adjust_later", (bucket.name, bucket.capacity, bucket.rate), delta))
        self.memory.adjust(bucket, delta, now)

    def clamp_later(self, bucket: BucketRef, level: float, now: float) -> None:
        self.calls.append(("clamp_later", (bucket.name, bucket.capacity, bucket.rate), level))
        self.memory.clamp(bucket, level, now)

    def flush(self) -> None:
        self.calls.append(("flush",))

    def exclusive(self) -> bool:
        return False  # as with Redis: no stall marks


# How a store is called, for counting its round trips: ``per_name`` reads an admission's
# cooldowns one call each and sends every correction on its own (a store with the interface's
# defaults); ``batched`` reads them in one call; ``carried`` is the Redis store: cooldowns read
# once and reused until one changes, corrections held back and carried by the next call.
MODES = ("per_name", "batched", "carried")


class Counting(Store):
    """The memory store, counting the calls (round trips, on a store such as Redis) made of it,
    by method, as a store of ``mode`` (see MODES) would make them. In ``carried`` mode a held
    correction costs nothing, the next call carries it (``acquire``, ``acquire_leased``,
    ``settle_lease``) or sends it first (one more call); cooldowns once read cost nothing until
    a cooldown changes (one engine: only its own, which it writes into what it read)."""

    def __init__(self, mode: str = "carried", exclusive: bool = True) -> None:
        self.memory = MemoryStore()
        self.calls: Counter[str] = Counter()
        self._mode = mode
        self._exclusive = exclusive
        self._held = 0
        self._read: set[str] = set()

    def _send(self, method: str, carries: bool = False) -> None:
        """Count a call of ``method``, and the corrections it sends first if it cannot carry
        them."""
        if self._held and not carries:
            self.calls["flush"] += 1
        self._held = 0
        self.calls[method] += 1

    def adjust_later(self, bucket: BucketRef, delta: float, now: float) -> None:
        if self._mode != "carried":
            self.adjust(bucket, delta, now)
            return
        self._held += 1
        self.memory.adjust(bucket, delta, now)

    def clamp_later(self, bucket: BucketRef, level: float, now: float) -> None:
        if self._mode != "carried":
            self.clamp(bucket, level, now)
            return
        self._held += 1
        self.memory.clamp(bucket, level, now)

    def flush(self) -> None:
        if self._held:
            self._send("flush")

    def acquire(self, buckets: Any, amounts: Any, floors: Any, now: float) -> float:
        self._send("acquire", carries=True)
        return self.memory.acquire(buckets, amounts, floors, now)

    def acquire_leased(
        self, buckets: Any, amounts: Any, floors: Any, now: float, leased: int, until: float
    ) -> tuple[float, str]:
        self._send("acquire_leased", carries=True)
        return self.memory.acquire_leased(buckets, amounts, floors, now, leased, until)

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        self._send("adjust")
        return self.memory.adjust(bucket, delta, now)

    def settle_lease(
        self, lease: str, buckets: Any, held: Any, kept: Any, now: float
    ) -> list[float]:
        self._send("settle_lease", carries=True)
        return self.memory.settle_lease(lease, buckets, held, kept, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        self._send("clamp")
        self.memory.clamp(bucket, level, now)

    def levels(self, buckets: Any, now: float) -> list[float]:
        self._send("levels")
        return self.memory.levels(buckets, now)

    def set_cooldown(self, name: str, until: float) -> None:
        self._send("set_cooldown")
        self._read.add(name)
        self.memory.set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        self.calls["cooldown"] += 1
        return self.memory.cooldown(name)

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        if self._mode == "per_name":
            return [self.cooldown(name) for name in names]
        if self._mode == "batched" or not self._read.issuperset(names):
            self.calls["cooldowns"] += 1
            self._read.update(names)
        return self.memory.cooldowns(names)

    def claim(self, name: str, until: float, now: float) -> bool:
        self._send("claim")
        return self.memory.claim(name, until, now)

    def reap(self, now: float, most: int) -> int:
        self._send("reap")
        return self.memory.reap(now, most)

    def exclusive(self) -> bool:
        return self._exclusive


def admission_calls(policy: str, mode: str, requests: int = 60) -> tuple[float, float]:
    """Store calls per admission and per settlement: the means over ``requests`` requests of
    the clinic's domains, each admitted at once on an idle engine (``policy``, a file in
    policies/) and answered 0.2 s later, of the calls its ``Submit`` and its ``Settled`` made
    (the settlement's with rate-limit headers, as OpenAI sends them)."""
    config = compile_policy(load_policy(ROOT / "policies" / policy).policy)
    store = Counting(mode, exclusive=False)
    engine = Engine(config, store, seed=0)
    admits, settles = [], []
    for i in range(requests):
        now = T0 + i * 0.5
        before = store.calls.total()
        actions = engine.handle(Submit(f"r{i}", DOMAINS[i % len(DOMAINS)], now, 200, 100))
        sends = [a for a in actions if isinstance(a, Send)]
        if not sends:
            continue
        admits.append(store.calls.total() - before)
        before = store.calls.total()
        engine.handle(
            Settled(
                sends[0].request_id, now + 0.2, 200, 80, attempt=sends[0].attempt, headers=HEADERS
            )
        )
        settles.append(store.calls.total() - before)
    return statistics.fmean(admits), statistics.fmean(settles)


def simulated_calls(policy: str, mode: str, hours: float = 24.0) -> tuple[float, Counter[str]]:
    """Store calls per request over the clinic day (``simulations/clinic-day.yaml``, its first
    ``hours``) simulated with ``policy`` (a file in policies/) on a counting memory store that
    says it is shared (not exclusive), as the Redis store does: the engine then calls it as it
    would call Redis (no stall marks, budget holds leased, alerts claimed), with the same
    decisions. The mean, and the calls by method."""
    from itertools import islice  # noqa: PLC0415

    from keypolicy.sim.driver import Simulation  # noqa: PLC0415
    from keypolicy.sim.traffic import load_traffic  # noqa: PLC0415

    traffic = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    horizon = hours * 3600
    arrivals = list(islice((a for a in traffic.arrivals(0) if a.time < horizon), 2_000_000))
    sim = Simulation(load_policy(ROOT / "policies" / policy).policy, iter(arrivals), T0, 0)
    store = Counting(mode, exclusive=False)
    sim.engine = Engine(sim.engine.config, store, 0)
    sim.run(until=horizon + 7200)
    return store.calls.total() / max(len(arrivals), 1), store.calls


def print_store_calls(hours: float = 24.0) -> dict[str, Any]:
    """The store calls (round trips, on Redis) an engine on a shared store makes per admission,
    per settlement and per request (the clinic day), for clinic-merged and clinic-single, with
    a store called in each of MODES, side by side."""
    out: dict[str, Any] = {}
    for policy in ("clinic-merged.yaml", "clinic-single.yaml"):
        row: dict[str, Any] = {}
        for mode in MODES:
            per_request, by_method = simulated_calls(policy, mode, hours)
            admit, settle = admission_calls(policy, mode)
            row[mode] = {
                "calls_per_admission": admit,
                "calls_per_settlement": settle,
                "calls_per_request": per_request,
                "by_method": dict(by_method),
            }
        out[policy] = row
        cells = "; ".join(
            f"{mode}: {row[mode]['calls_per_admission']:.2f} + "
            f"{row[mode]['calls_per_settlement']:.2f}, {row[mode]['calls_per_request']:.2f}"
            for mode in MODES
        )
        print(
            f"store calls, {policy:18s} (per admission + per settlement, per request over "
            f"{hours:g} h of the clinic day) {cells}"
        )
    return out


def record(requests: int = 60) -> list[dict[str, list[Call]]]:
    """For each of ``requests`` clinic requests that went out: the store calls of its
    admission and of its settlement."""
    config = compile_policy(load_policy(ROOT / "policies" / "clinic-merged.yaml").policy)
    store = Recorder()
    engine = Engine(config, store, seed=0)
    out = []
    for i in range(requests):
        now = T0 + i * 0.5
        store.calls = []
        actions = engine.handle(Submit(f"r{i}", DOMAINS[i % len(DOMAINS)], now, 200, 100))
        admitted = store.calls
        sends = [a for a in actions if isinstance(a, Send)]
        if not sends:
            continue
        store.calls = []
        engine.handle(
            Settled(
                sends[0].request_id, now + 0.2, 200, 80, attempt=sends[0].attempt, headers=HEADERS
            )
        )
        out.append({"admit": admitted, "settle": store.calls})
    return out


def _bucket(b: Bucket) -> BucketRef:
    name, capacity, rate = b
    return BucketRef(name, capacity * SCALE, rate * SCALE)


def _plan(recorded: list[dict[str, list[Call]]], engine_calls: bool) -> list[list[Call]]:
    """Each admission as the calls to replay, buckets rebuilt and scaled."""
    plans = []
    for one in recorded:
        calls: list[Call] = []
        for call in one["admit"] + one["settle"]:
            kind = call[0]
            if kind == "acquire" and call[4] == 0.0:
                calls.append(("acquire", [_bucket(b) for b in call[1]], call[2], call[3]))
            elif kind == "adjust":
                calls.append(("adjust", _bucket(call[1]), call[2]))
            elif engine_calls and kind in ("adjust_later",):
                calls.append((kind, _bucket(call[1]), call[2]))
            elif engine_calls and kind in ("clamp", "clamp_later"):
                calls.append((kind, _bucket(call[1]), call[2] * SCALE))
            elif engine_calls and kind == "flush":
                calls.append(call)
            elif engine_calls and kind == "levels":
                calls.append(("levels", [_bucket(b) for b in call[1]]))
            elif engine_calls and kind in ("cooldown", "cooldowns", "set_cooldown"):
                calls.append(call)
        plans.append(calls)
    return plans


class ClientPath(RedisStore):
    """The Redis store sending each command through redis-py's client (``execute_command``:
    its retry, observability and pool machinery) instead of its own connection handling."""

    def _execute(self, *command: Any) -> Any:
        return self._client.execute_command(*command)  # type: ignore[no-untyped-call]


def _store(kind: str, url: str, namespace: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "redis-no-hiredis":
        import redis  # noqa: PLC0415
        from redis._parsers import _RESP2Parser  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        client = redis.Redis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            protocol=2,
            parser_class=_RESP2Parser,
        )
        return RedisStore(client, namespace=namespace)
    if kind == "redis-client-path":
        return ClientPath.from_url(url, namespace=namespace)
    return RedisStore.from_url(url, namespace=namespace)


def _worker(
    kind: str,
    url: str,
    namespace: str,
    plans: list[list[Call]],
    seconds: float,
    barrier: Any,
    results: Any,
) -> None:
    store = _store(kind, url, namespace)
    clock = time.perf_counter_ns
    wall = time.time
    trips = [0]
    if isinstance(store, RedisStore):  # count the round trips (every command is one)
        execute = store._execute

        def counted(*command: Any) -> Any:
            trips[0] += 1
            return execute(*command)

        store._execute = counted  # type: ignore[method-assign]

    def admit(calls: list[Call]) -> int:
        now = wall()
        start = clock()
        for call in calls:
            what = call[0]
            if what == "acquire":
                store.acquire(call[1], call[2], call[3], now)
            elif what == "adjust":
                store.adjust(call[1], call[2], now)
            elif what == "clamp":
                store.clamp(call[1], call[2], now)
            elif what == "adjust_later":
                store.adjust_later(call[1], call[2], now)
            elif what == "clamp_later":
                store.clamp_later(call[1], call[2], now)
            elif what == "flush":
                store.flush()
            elif what == "levels":
                store.levels(call[1], now)
            elif what == "cooldown":
                store.cooldown(call[1])
            elif what == "cooldowns":
                store.cooldowns(call[1])
            else:
                store.set_cooldown(call[1], now + call[2])
        return clock() - start

    for i in range(300):  # warm up: connections, scripts loaded, caches
        admit(plans[i % len(plans)])
    barrier.wait()
    trips[0] = 0
    latencies: list[int] = []
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        latencies.append(admit(plans[n % len(plans)]))
        n += 1
        if n % 64 == 0 and time.perf_counter() >= deadline:
            break
    results.put((n, time.perf_counter() - start, latencies, trips[0]))


def run(
    kind: str, procs: int, url: str, namespace: str, plans: list[list[Call]], seconds: float
) -> dict[str, Any]:
    """``procs`` processes admitting for ``seconds``; throughput and latency percentiles."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(kind, url, namespace, plans, seconds, barrier, results))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    got: list[tuple[int, float, list[int], int]] = [
        results.get(timeout=seconds + 120) for _ in workers
    ]
    for w in workers:
        w.join(timeout=30)
    admissions = sum(n for n, _, _, _ in got)
    elapsed = max(e for _, e, _, _ in got)
    latencies = sorted(x / 1e6 for _, _, lat, _ in got for x in lat)  # ms
    trips = sum(t for _, _, _, t in got)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "store": kind,
        "processes": procs,
        "admissions": admissions,
        "seconds": elapsed,
        "admissions_per_s": admissions / elapsed,
        "calls_per_admission": statistics.mean(len(p) for p in plans),
        # Round trips to Redis per request (admission and settlement), counted; 0 for memory.
        "round_trips_per_request": trips / max(admissions, 1),
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "p99.9": pct(99.9),
            "max": latencies[-1],
            "mean": statistics.fmean(latencies),
        },
    }


def _cleanup(url: str, namespace: str) -> None:
    """Delete the benchmark's keys (by namespace: never a flush)."""
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(url)
    pattern = RedisStore(client, namespace=namespace).key_pattern()
    keys = list(client.scan_iter(match=pattern, count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _server(url: str) -> dict[str, Any]:
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(url)
    info = client.info("server")
    client.close()
    return {"redis_version": info.get("redis_version"), "redis_py": redis.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per case (default 4)")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--calls-only",
        action="store_true",
        help="only count the store calls per admission and per request (no Redis needed)",
    )
    parser.add_argument(
        "--calls-hours", type=float, default=24.0, help="hours of the clinic day to count over"
    )
    args = parser.parse_args()
    store_calls = print_store_calls(args.calls_hours)
    if args.calls_only:
        return
    recorded = record()
    store_only = _plan(recorded, engine_calls=False)
    engine_calls = _plan(recorded, engine_calls=True)
    sizes = [len(c[1]) for p in store_only for c in p if c[0] == "acquire"]
    namespace = f"bench-{uuid.uuid4().hex[:12]}"
    cases = [
        ("memory", 1, store_only),
        ("redis", 1, store_only),
        ("redis-client-path", 1, store_only),
        ("redis-no-hiredis", 1, store_only),
        ("redis-engine-calls", 1, engine_calls),
        ("memory", 4, store_only),
        ("redis", 4, store_only),
        ("redis-client-path", 4, store_only),
        ("redis-engine-calls", 4, engine_calls),
    ]
    results = []
    try:
        for kind, procs, plans in cases:
            r = run(kind, procs, args.url, namespace, plans, args.seconds)
            results.append(r)
            lat = r["latency_ms"]
            print(
                f"{kind:19s} {procs} proc{'s' if procs > 1 else ' '} "
                f"{r['admissions_per_s']:>10,.0f} admissions/s  "
                f"({r['calls_per_admission']:.1f} store calls, "
                f"{r['round_trips_per_request']:.2f} round trips each)  latency ms: "
                f"p50 {lat['p50']:.3f}  p90 {lat['p90']:.3f}  p99 {lat['p99']:.3f}  "
                f"max {lat['max']:.1f}"
            )
    finally:
        _cleanup(args.url, namespace)

    def find(kind: str, procs: int) -> dict[str, Any]:
        return next(r for r in results if r["store"] == kind and r["processes"] == procs)

    ratios = {}
    for procs in (1, 4):
        mem, red = find("memory", procs), find("redis", procs)
        eng = find("redis-engine-calls", procs)
        ratios[f"memory_over_redis_{procs}"] = mem["admissions_per_s"] / red["admissions_per_s"]
        ratios[f"redis_over_engine_calls_{procs}"] = (
            red["admissions_per_s"] / eng["admissions_per_s"]
        )
        ratios[f"redis_over_client_path_{procs}"] = (
            red["admissions_per_s"] / find("redis-client-path", procs)["admissions_per_s"]
        )
        print(
            f"{procs} proc{'s' if procs > 1 else ''}: memory/redis "
            f"{ratios[f'memory_over_redis_{procs}']:,.1f}x; the store alone / today's engine "
            f"calls {ratios[f'redis_over_engine_calls_{procs}']:.2f}x; its own connection "
            f"handling / redis-py's command path {ratios[f'redis_over_client_path_{procs}']:.2f}x"
        )
    ratios["hiredis_over_python_parser"] = (
        find("redis", 1)["admissions_per_s"] / find("redis-no-hiredis", 1)["admissions_per_s"]
    )
    print(f"hiredis / pure-Python parser (1 proc): {ratios['hiredis_over_python_parser']:.2f}x")
    r4 = find("redis", 4)
    goals = {
        "admissions_per_s_4_procs >= 5000": r4["admissions_per_s"] >= 5_000,
        "median_ms_4_procs <= 0.5": r4["latency_ms"]["p50"] <= 0.5,
    }
    for goal, met in goals.items():
        print(f"goal {goal}: {'met' if met else 'NOT met'}")
    out = ROOT / "benchmarks" / "results" / "redis_state.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "python": platform.python_version(),
        "compiled": _native.is_compiled(),
        "cpus": os.cpu_count(),
        **_server(args.url),
        "seconds_per_case": args.seconds,
        "buckets_per_acquire": {
            "min": min(sizes),
            "max": max(sizes),
            "mean": statistics.fmean(sizes),
        },
        "results": results,
        "store_calls": store_calls,
        "ratios": ratios,
        "goals": goals,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
