"""What the runtime adds to a live call: a bare ``openai`` client against a keypolicy client.

Both call the mock OpenAI server (zero latency, in this process on a thread, as the tests run it)
with the same small chat completion (``max_tokens`` 16), for a policy whose limits are far too
large to bind, so that what differs is the runtime's work, not waiting:

- bare: ``openai.OpenAI(api_key=<the key's secret>, base_url=<mock>, max_retries=0)``;
- keypolicy: ``Runtime.from_file(policy, ledger=<tmp>/usage.sqlite).openai("bench")``, which
  sizes each request, feeds the engine ``Submit`` and ``Settled`` under the runtime's lock, sets
  the chosen key and writes a usage record to the SQLite ledger.

Measured side by side at 1 and 64 concurrent callers (threads sharing one client), and at 64
asyncio tasks for the ``AsyncOpenAI`` pair, alternating the two clients over several rounds so
that the machine's noise falls on both alike; each round is ``--calls`` calls (bounded, and
``--seconds`` per round at most). Client and server share the machine's cores (and one GIL): the
bare client's throughput is bounded by the server, so the ratios are the result, not the absolute
numbers. Then the engine's own decision time: ``Submit`` + ``Settled`` pairs (with the headers of a
real mock answer) on an engine compiled from the same policy, and the time spent inside
``engine.handle`` and ``Conductor.handle`` during an instrumented runtime pass (not the one the
ratios come from). With ``--profile N``, ``N`` keypolicy calls on one thread under cProfile, to
see where the added time goes.

Goals (issue 12): throughput ratio keypolicy/bare at least 0.95; added median latency per call
at most 0.3 ms (one caller: at 64 callers the latency is mostly queueing behind the server); the
engine's decision (a Submit + Settled pair) at most 20 µs. Prints the figures and writes
benchmarks/results/runtime_overhead.json.

    .venv/bin/python benchmarks/runtime_overhead.py [--rounds K] [--calls N] [--profile N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import platform
import pstats
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import openai

from keypolicy import _native
from keypolicy.core import Engine, Send, Settled, Submit
from keypolicy.core.headers import parse_rate_limit_headers
from keypolicy.mock import MockOptions, MockServer, create_app
from keypolicy.mock.server import bind
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.runtime import Runtime
from keypolicy.runtime.transport import PolicyTransport
from keypolicy.state import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "runtime_overhead.json"
GOAL_RATIO = 0.95
GOAL_ADDED_MS = 0.3
GOAL_DECISION_US = 20.0
ENV = "KEYPOLICY_BENCH_KEY"
POLICY = f"""\
version: 1
name: bench
projects:
  bench:
    models:
      gpt-4o-mini: {{rpm: 100M, tpm: 100000M}}
keys:
  bench: {{project: bench, env: {ENV}}}
pools:
  bench: {{keys: [bench]}}
priorities:
  - name: normal
domains:
  bench: {{pool: bench, priority: normal, model: gpt-4o-mini}}
"""
ANSWER: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Yes."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
}
"""A canned answer, for measuring the client's own CPU without a server."""

REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello! How are you today?"}],
    "max_tokens": 16,
}


# ---------------------------------------------------------------------------- one round


def sync_round(client: openai.OpenAI, callers: int, calls: int, seconds: float) -> dict[str, Any]:
    """``calls`` calls shared by ``callers`` threads on one client; wall time and latencies."""
    tickets = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    client_cpu: list[float] = []
    barrier = threading.Barrier(callers + 1)
    deadline = [0.0]
    clock = time.perf_counter
    create = client.chat.completions.create

    def caller() -> None:
        barrier.wait()
        mine: list[float] = []
        cpu = time.thread_time()
        try:
            while next(tickets) < calls and clock() < deadline[0]:
                t = clock()
                create(**REQUEST)
                mine.append(clock() - t)
        except Exception as exc:  # counted and shown: a bench call must not fail
            errors.append(f"{type(exc).__name__}: {exc}")
        latencies.extend(mine)
        client_cpu.append(time.thread_time() - cpu)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    deadline[0] = clock() + seconds
    began, process = clock(), time.process_time()
    barrier.wait()
    for thread in threads:
        thread.join()
    cpu = (sum(client_cpu), time.process_time() - process)
    return _round(clock() - began, latencies, errors, cpu)


async def async_round(
    client: openai.AsyncOpenAI, callers: int, calls: int, seconds: float
) -> dict[str, Any]:
    """``calls`` calls shared by ``callers`` asyncio tasks on one client."""
    tickets = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    clock = time.perf_counter
    create = client.chat.completions.create
    deadline = clock() + seconds

    async def caller() -> None:
        try:
            while next(tickets) < calls and clock() < deadline:
                t = clock()
                await create(**REQUEST)
                latencies.append(clock() - t)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    began, process, thread = clock(), time.process_time(), time.thread_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    cpu = (time.thread_time() - thread, time.process_time() - process)
    return _round(clock() - began, latencies, errors, cpu)


def _round(
    elapsed: float, latencies: list[float], errors: list[str], cpu: tuple[float, float]
) -> dict[str, Any]:
    """A round's figures; ``cpu``: the callers' threads' CPU time, and the whole process's
    (callers, the mock server's thread, the runtime's ledger writer and timer)."""
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed, first: {errors[0]}")
    calls = len(latencies)
    return {
        "calls": calls,
        "seconds": elapsed,
        "calls_per_s": calls / elapsed,
        "median_ms": statistics.median(latencies) * 1e3,
        "client_cpu_us_per_call": cpu[0] / calls * 1e6,
        "process_cpu_us_per_call": cpu[1] / calls * 1e6,
    }


# ---------------------------------------------------------------------------- side by side


def order(rounds: int) -> list[str]:
    """Bare and keypolicy rounds alternated, the order swapped each round."""
    out: list[str] = []
    for r in range(rounds):
        out += ["bare", "keypolicy"] if r % 2 == 0 else ["keypolicy", "bare"]
    return out


def summary(callers: int, runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Best-of and medians of each client's rounds, and the ratios of paired rounds."""
    kept: dict[str, list[dict[str, Any]]] = {"bare": [], "keypolicy": []}
    for name, result in runs:
        kept[name].append(result)
    out: dict[str, Any] = {"callers": callers, "rounds": len(kept["bare"])}
    for name, rounds in kept.items():
        rates = [x["calls_per_s"] for x in rounds]
        out[name] = {
            "calls_per_round": rounds[0]["calls"],
            "best_calls_per_s": max(rates),
            "median_calls_per_s": statistics.median(rates),
            "median_latency_ms": statistics.median(x["median_ms"] for x in rounds),
            "client_cpu_us_per_call": statistics.median(
                x["client_cpu_us_per_call"] for x in rounds
            ),
            "process_cpu_us_per_call": statistics.median(
                x["process_cpu_us_per_call"] for x in rounds
            ),
            "rounds": rounds,
        }
    pairs = list(zip(kept["bare"], kept["keypolicy"], strict=True))
    out["ratio_best"] = out["keypolicy"]["best_calls_per_s"] / out["bare"]["best_calls_per_s"]
    out["ratio_median_paired"] = statistics.median(
        k["calls_per_s"] / b["calls_per_s"] for b, k in pairs
    )
    out["added_median_latency_ms"] = statistics.median(
        k["median_ms"] - b["median_ms"] for b, k in pairs
    )
    return out


def show(label: str, r: dict[str, Any]) -> None:
    """Two lines: throughputs and their ratio, median latencies and the added latency."""
    b, k = r["bare"], r["keypolicy"]
    print(
        f"{label:16s} throughput  bare {b['best_calls_per_s']:6,.0f}/s, keypolicy "
        f"{k['best_calls_per_s']:6,.0f}/s (best of {r['rounds']}): ratio {r['ratio_best']:.3f}; "
        f"median of paired rounds {r['ratio_median_paired']:.3f}"
    )
    print(
        f"{'':16s} median call  bare {b['median_latency_ms']:.3f} ms, keypolicy "
        f"{k['median_latency_ms']:.3f} ms: added {r['added_median_latency_ms']:+.3f} ms "
        f"(median of paired rounds)"
    )
    print(
        f"{'':16s} CPU a call   callers' threads: bare {b['client_cpu_us_per_call']:,.0f} µs, "
        f"keypolicy {k['client_cpu_us_per_call']:,.0f} µs; whole process (server included): "
        f"bare {b['process_cpu_us_per_call']:,.0f} µs, keypolicy "
        f"{k['process_cpu_us_per_call']:,.0f} µs (medians of rounds)"
    )


# ---------------------------------------------------------------------------- the engine


class _TimedEngine:
    """Stands in for the runtime's engine: times every ``handle`` (called under the lock)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.seconds = 0.0
        self.events = 0

    def handle(self, event: Any) -> Any:
        t = time.perf_counter()
        actions = self._engine.handle(event)
        self.seconds += time.perf_counter() - t
        self.events += 1
        return actions

    @property
    def next_wake(self) -> float | None:
        return self._engine.next_wake


def decisions_in_runtime(rt: Runtime, callers: int, calls: int, seconds: float) -> dict[str, Any]:
    """Time inside ``engine.handle`` and ``Conductor.handle`` during ``calls`` keypolicy calls
    (the timing wraps the runtime's private conductor; this pass is not used for the ratios)."""
    conductor = rt._conductor
    timed = _TimedEngine(conductor.engine)
    spans: list[float] = []
    handle = conductor.handle

    def timed_handle(event: Any) -> None:
        t = time.perf_counter()
        handle(event)
        spans.append(time.perf_counter() - t)

    conductor.engine = timed  # type: ignore[assignment]
    conductor.handle = timed_handle  # type: ignore[method-assign]
    try:
        done = sync_round(rt.openai("bench"), callers, calls, seconds)["calls"]
    finally:
        conductor.engine = timed._engine
        del conductor.handle
    return {
        "callers": callers,
        "calls": done,
        "engine_events": timed.events,
        "engine_us_per_call": timed.seconds / done * 1e6,
        "conductor_us_per_call": sum(spans) / done * 1e6,
        "conductor_us_per_event_median": statistics.median(spans) * 1e6,
    }


def decisions_direct(
    policy: Path, pairs: int, headers: Any, usage: tuple[int, int], parsed: bool = False
) -> dict[str, float]:
    """``Submit`` + ``Settled`` pairs straight on an engine compiled from the same policy, the
    ``Settled`` carrying ``headers`` as the runtime passes them (the engine reads the
    ``x-ratelimit-*`` headers from them under the runtime's lock), or, ``parsed``, their numbers
    read beforehand (``Settled.rate_limits``, as the simulator passes them; the reading is timed
    apart, as work that could be done outside the lock)."""
    engine = Engine(compile_policy(load_policy(policy).policy), MemoryStore(), seed=0)
    clock = time.perf_counter
    t0 = 1_795_000_000.0
    in_core = reading = 0.0
    for i in range(pairs):
        now = t0 + i * 0.001
        submit = Submit(f"r{i}", "bench", now, 12, 16, 1, "gpt-4o-mini", 12)
        t = clock()
        actions = engine.handle(submit)
        in_core += clock() - t
        send = next(a for a in actions if isinstance(a, Send))
        if parsed:
            t = clock()
            limits = parse_rate_limit_headers(headers)
            reading += clock() - t
            settled = Settled(
                f"r{i}", now + 0.0005, usage[0], usage[1], 0, None, send.attempt, limits
            )
        else:
            settled = Settled(f"r{i}", now + 0.0005, usage[0], usage[1], 0, headers, send.attempt)
        t = clock()
        engine.handle(settled)
        in_core += clock() - t
    return {
        "pairs": pairs,
        "us_per_pair": in_core / pairs * 1e6,
        "pairs_per_s": pairs / in_core,
        "us_reading_headers_outside": reading / pairs * 1e6,
    }


def decisions(
    rt: Runtime, bare: openai.OpenAI, policy: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """The engine's decision time, directly and inside the runtime; printed."""
    raw = bare.chat.completions.with_raw_response.create(**REQUEST)
    usage = raw.parse().usage
    assert usage is not None
    tokens = (usage.prompt_tokens, usage.completion_tokens)
    as_dict = dict(raw.headers.items())
    direct = {
        "httpx2_headers": decisions_direct(policy, args.pairs, raw.headers, tokens),
        "dict_headers": decisions_direct(policy, args.pairs, as_dict, tokens),
        "parsed_headers": decisions_direct(policy, args.pairs, raw.headers, tokens, parsed=True),
    }
    inside = [
        decisions_in_runtime(rt, c, n, args.seconds)
        for c, n in ((1, args.calls), (64, args.calls_concurrent))
    ]
    d = direct["parsed_headers"]
    print(
        f"engine decision: {d['us_per_pair']:.1f} µs a Submit+Settled pair on an engine of the "
        f"same policy ({d['pairs_per_s']:,.0f} pairs/s), the Settled carrying the rate-limit "
        f"headers as numbers read beforehand, as the runtime passes them (reading them: "
        f"{d['us_reading_headers_outside']:.1f} µs, outside the lock); with the headers for the "
        f"engine to read: {direct['dict_headers']['us_per_pair']:.1f} µs as a plain dict, "
        f"{direct['httpx2_headers']['us_per_pair']:.1f} µs as httpx2.Headers"
    )
    for x in inside:
        print(
            f"  in the runtime, {x['callers']:2d} caller(s): {x['engine_us_per_call']:.1f} µs "
            f"per call in engine.handle ({x['engine_events'] / x['calls']:.2f} events a call), "
            f"{x['conductor_us_per_call']:.1f} µs in Conductor.handle (lock and routing "
            f"included; median event {x['conductor_us_per_event_median']:.1f} µs)"
        )
    return {"direct": direct, "in_runtime": inside}


# ---------------------------------------------------------------------------- profile


def _runtime_and_clients(
    policy: Path, folder: str, environ: dict[str, str], url: str, secret: str
) -> tuple[Runtime, dict[str, openai.OpenAI]]:
    """A runtime on the mock at ``url``, and the two clients compared: bare and keypolicy's."""
    rt = Runtime.from_file(
        policy, ledger=Path(folder) / "usage.sqlite", environ=environ, base_url=url
    )
    return rt, {
        "bare": openai.OpenAI(api_key=secret, base_url=url, max_retries=0),
        "keypolicy": rt.openai("bench"),
    }


def profile(
    policy: Path, url: str, secret: str, environ: dict[str, str], calls: int, top: int = 25
) -> dict[str, Any]:
    """``calls`` calls of each client on this thread under cProfile (the server's thread is not
    profiled; its clock is this thread's CPU time, so waiting for the server counts nothing);
    the keypolicy client's costs that the bare one does not have, by own time.

    A fresh runtime and a fresh bare client, each warmed up on this thread: each connection pool
    holds one connection (httpx's pool looks at every idle connection on every request, so
    pools of unequal sizes would differ for that alone)."""
    stats: dict[str, pstats.Stats] = {}
    with tempfile.TemporaryDirectory() as folder:
        rt, clients = _runtime_and_clients(policy, folder, environ, url, secret)
        try:
            for name, client in clients.items():
                for _ in range(50):
                    client.chat.completions.create(**REQUEST)
                prof = cProfile.Profile(time.thread_time)  # this thread's CPU, not waits
                prof.enable()
                for _ in range(calls):
                    client.chat.completions.create(**REQUEST)
                prof.disable()
                stats[name] = pstats.Stats(prof)
        finally:
            for client in clients.values():
                client.close()
            rt.close()
    raw = {name: s.stats for name, s in stats.items()}  # type: ignore[attr-defined]
    totals = {name: sum(v[2] for v in table.values()) for name, table in raw.items()}
    extra = []
    for func, (_, ncalls, tottime, cumtime, _) in raw["keypolicy"].items():
        before = raw["bare"].get(func)
        own = tottime - (before[2] if before else 0.0)
        extra.append((own, func, ncalls, tottime, cumtime))
    extra.sort(key=lambda x: x[0], reverse=True)
    added = totals["keypolicy"] - totals["bare"]

    def where(func: tuple[str, int, str]) -> str:
        file, line, name = func
        for marker in ("site-packages/", "src/"):
            if marker in file:
                file = file.split(marker, 1)[1]
        return f"{file}:{line}:{name}"

    cumulative = sorted(
        (
            (cum, where(func), n)
            for func, (_, n, _, cum, _) in raw["keypolicy"].items()
            if "keypolicy" in func[0] and func not in raw["bare"]
        ),
        reverse=True,
    )
    return {
        "calls": calls,
        "profiled_us_per_call": {k: v / calls * 1e6 for k, v in totals.items()},
        "added_us_per_call": added / calls * 1e6,
        "top_own_time_added": [
            {
                "where": where(func),
                "calls_per_call": n / calls,
                "added_us_per_call": own / calls * 1e6,
                "share_of_added": own / added if added > 0 else None,
            }
            for own, func, n, _, _ in extra[:top]
        ],
        "top_cumulative_keypolicy": [
            {"where": w, "calls_per_call": n / calls, "us_per_call": cum / calls * 1e6}
            for cum, w, n in cumulative[:top]
        ],
    }


def show_profile(p: dict[str, Any]) -> None:
    bare, kp = p["profiled_us_per_call"]["bare"], p["profiled_us_per_call"]["keypolicy"]
    print(
        f"\nprofile ({p['calls']} calls each, one thread, its CPU time under cProfile, which "
        f"inflates small Python calls most): bare {bare:.0f} µs/call, keypolicy {kp:.0f} µs/call,"
        f" added {p['added_us_per_call']:.0f} µs/call"
    )
    print("  own time the keypolicy client adds, by function (share of the added time):")
    for row in p["top_own_time_added"]:
        share = row["share_of_added"]
        print(
            f"    {row['added_us_per_call']:7.1f} µs {share * 100 if share else 0:5.1f}%  "
            f"x{row['calls_per_call']:<5.3g} {row['where']}"
        )
    print("  keypolicy's own functions, cumulative time per call:")
    for row in p["top_cumulative_keypolicy"]:
        print(f"    {row['us_per_call']:7.1f} µs  x{row['calls_per_call']:<5.3g} {row['where']}")


# ---------------------------------------------------------------------------- main


class _ServerProcess:
    """``keypolicy mock-server`` in a process of its own (the default): the clients' process
    holds only the clients, as a service's would, and the server has its own interpreter."""

    def __init__(self, policy: Path, environ: dict[str, str]) -> None:
        probe = bind("127.0.0.1", 0)
        port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keypolicy",
                "mock-server",
                "--policy",
                str(policy),
                "--port",
                str(port),
                "--no-latency",
                "--log-level",
                "warning",
            ],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the mock server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)


def start_server(policy: Path, environ: dict[str, str], in_process: bool) -> Any:
    """The mock server, in its own process or (``--in-process``) on a thread of this one."""
    if not in_process:
        return _ServerProcess(policy, environ)
    server = MockServer(create_app(policy, options=MockOptions(latency=False), environ=environ))
    server.start()
    return server


def added_cpu(policy: Path, folder: str, environ: dict[str, str], rounds: int) -> dict[str, Any]:
    """CPU a call costs the calling thread, bare client against keypolicy's, both over httpx2's
    MockTransport (a canned answer, no server, no network): what keypolicy adds to a call, free
    of the server's noise. Best of ``rounds`` alternated rounds of 500 calls each."""
    body = json.dumps(ANSWER).encode()
    roomy = str(10**12)
    headers = [("content-type", "application/json")] + [
        (f"x-ratelimit-{a}-{b}", roomy)
        for a in ("limit", "remaining")
        for b in ("requests", "tokens")
    ]

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers=headers)

    rt = Runtime.from_file(policy, ledger=Path(folder) / "cpu.sqlite", environ=environ)
    base = "http://upstream.invalid/v1"
    clients = {
        "bare": openai.OpenAI(
            api_key="sk-bench",
            base_url=base,
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        ),
        "keypolicy": openai.OpenAI(
            api_key="sk-bench",
            base_url=base,
            max_retries=0,
            http_client=httpx2.Client(
                transport=PolicyTransport(rt._context, "bench", httpx2.MockTransport(answer))
            ),
        ),
    }

    def cpu(client: openai.OpenAI, calls: int) -> float:
        began = time.thread_time()
        for _ in range(calls):
            client.chat.completions.create(**REQUEST)
        return (time.thread_time() - began) / calls * 1e6

    try:
        for client in clients.values():
            cpu(client, 200)
        best = {name: min(cpu(clients[name], 500) for _ in range(rounds)) for name in clients}
    finally:
        rt.close()
    out = {
        "bare_us": best["bare"],
        "keypolicy_us": best["keypolicy"],
        "added_us": best["keypolicy"] - best["bare"],
        "ratio": best["bare"] / best["keypolicy"],
    }
    print(
        f"CPU a call, no server (httpx2 MockTransport; best of {rounds} rounds of 500): bare "
        f"client {out['bare_us']:,.0f} µs, keypolicy {out['keypolicy_us']:,.0f} µs: keypolicy "
        f"adds {out['added_us']:,.0f} µs a call (ratio {out['ratio']:.3f} when the client's CPU "
        f"is all there is)"
    )
    return out


def measure(
    args: argparse.Namespace, policy: Path, folder: str, secret: str, environ: dict[str, str]
) -> dict[str, Any]:
    """Everything measured against one mock server and one runtime."""
    results: dict[str, Any] = {}
    server = start_server(policy, environ, args.in_process)
    url = server.url + "/v1"
    rt, clients = _runtime_and_clients(policy, folder, environ, url, secret)
    try:
        for client in clients.values():  # warm up: connections, tokenizer, caches
            sync_round(client, 4, 100, 10.0)
        for callers, calls in ((1, args.calls), (64, args.calls_concurrent)):
            runs = [
                (name, sync_round(clients[name], callers, calls, args.seconds))
                for name in order(args.rounds)
            ]
            results[f"sync_{callers}"] = summary(callers, runs)
            show(f"sync, {callers:2d} threads", results[f"sync_{callers}"])
        if not args.no_async:
            results["async_64"] = asyncio.run(async_compare(rt, url, secret, args))
            show("async, 64 tasks", results["async_64"])
        results["decisions"] = decisions(rt, clients["bare"], policy, args)
        results["added_cpu"] = added_cpu(policy, folder, environ, args.rounds)
        if args.profile:
            results["profile"] = profile(policy, url, secret, environ, args.profile)
            show_profile(results["profile"])
    finally:
        for client in clients.values():
            client.close()
        rt.close()
        server.stop()
    return results


def judge(results: dict[str, Any]) -> dict[str, Any]:
    """The goals, met or not; printed."""
    one = results["sync_1"]
    cases = {k: results[k] for k in ("sync_1", "sync_64", "async_64") if k in results}
    worst = min(r["ratio_median_paired"] for r in cases.values())
    decision = results["decisions"]["direct"]["parsed_headers"]["us_per_pair"]
    added = one["added_median_latency_ms"]
    goals = {
        "throughput_ratio": {"goal": GOAL_RATIO, "worst": worst, "met": worst >= GOAL_RATIO},
        "added_median_latency_ms_1_caller": {
            "goal": GOAL_ADDED_MS,
            "value": added,
            "met": added <= GOAL_ADDED_MS,
        },
        "decision_us_per_pair": {
            "goal": GOAL_DECISION_US,
            "value": decision,
            "met": decision <= GOAL_DECISION_US,
        },
    }
    ratios = ", ".join(f"{k} {r['ratio_median_paired']:.3f}" for k, r in cases.items())
    verdict = {k: "met" if g["met"] else "NOT met" for k, g in goals.items()}
    print(
        f"goals: throughput ratio >= {GOAL_RATIO} (median of paired rounds: {ratios}): "
        f"{verdict['throughput_ratio']}; added median latency <= {GOAL_ADDED_MS} ms (1 caller: "
        f"{added:+.3f} ms): {verdict['added_median_latency_ms_1_caller']}; engine decision <= "
        f"{GOAL_DECISION_US:g} µs ({decision:.1f} µs a pair): {verdict['decision_us_per_pair']}"
    )
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each client per case")
    parser.add_argument("--calls", type=int, default=300, help="calls per round, 1 caller")
    parser.add_argument(
        "--calls-concurrent", type=int, default=800, help="calls per round, 64 callers"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="at most, per round")
    parser.add_argument("--pairs", type=int, default=20_000, help="engine pairs, direct")
    parser.add_argument("--no-async", action="store_true", help="skip the asyncio pair")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N calls")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the mock server on a thread of this process (it then shares the GIL)",
    )
    args = parser.parse_args()
    secret = "sk-bench-" + secrets.token_hex(16)
    environ = {**os.environ, ENV: secret}
    began = time.perf_counter()
    compiled = _native.is_compiled()
    where = "on a thread of this process" if args.in_process else "in a process of its own"
    print(
        f"runtime overhead: the mock server (zero latency) runs {where}, on the same "
        f"{os.cpu_count()} cores as the clients: the bare client's throughput is bounded by the "
        f"server, so the ratios are the result, not the absolute numbers. "
        f"Compiled build: {'yes' if compiled else 'no (plain Python)'}; openai "
        f"{openai.__version__}, Python {platform.python_version()}."
    )
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "openai": openai.__version__,
        "cpus": os.cpu_count(),
        "compiled": compiled,
        "note": "client and server share the machine's cores: ratios are the result",
        "server": "thread" if args.in_process else "process",
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "bench.yaml"
        policy.write_text(POLICY)
        results.update(measure(args, policy, folder, secret, environ))
    results["goals"] = judge(results)
    results["seconds"] = time.perf_counter() - began
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)} ({results['seconds']:.0f} s)")


async def async_compare(rt: Runtime, url: str, secret: str, args: Any) -> dict[str, Any]:
    """The asyncio pair at 64 tasks, alternated like the sync ones."""
    clients = {
        "bare": openai.AsyncOpenAI(api_key=secret, base_url=url, max_retries=0),
        "keypolicy": rt.async_openai("bench"),
    }
    try:
        for client in clients.values():
            await async_round(client, 4, 100, 10.0)
        runs = [
            (name, await async_round(clients[name], 64, args.calls_concurrent, args.seconds))
            for name in order(args.rounds)
        ]
    finally:
        for client in clients.values():
            await client.close()
    return summary(64, runs)


if __name__ == "__main__":
    main()
