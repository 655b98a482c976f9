"""Requests per second the mock OpenAI server serves on loopback, with zero latency.

The server runs in a process of its own (as ``keypolicy mock-server`` would), for a policy whose
limits are too large to be reached, with latency off and request logging off. A load generator in
this process keeps several keep-alive HTTP/1.1 connections busy with small chat completions,
written and read with asyncio streams (no HTTP client library, so the figure is the server's, not
a client's). Bounded: at most ``--requests`` requests and ``--seconds`` seconds, loopback only.

Prints the figure and writes ``benchmarks/results/mock_server.json``. Goal: at least 2,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 2000.0
RESULTS = Path(__file__).parent / "results" / "mock_server.json"
POLICY = """\
version: 1
name: bench
projects:
  bench:
    models:
      gpt-4o-mini: {rpm: 100M, tpm: 100000M}
keys:
  bench: {project: bench, env: KEYPOLICY_BENCH_KEY}
pools:
  bench: {keys: [bench]}
priorities:
  - name: normal
domains:
  bench: {pool: bench, priority: normal, model: gpt-4o-mini}
"""
CONTENT_LENGTH = re.compile(rb"(?i)content-length: (\d+)")
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}
).encode()


def start_server(policy: Path, secret: str) -> tuple[subprocess.Popen[str], str]:
    """The mock server in a child process, and its base URL."""
    code = (
        "import sys; from keypolicy.mock import run_mock_server; "
        "run_mock_server(sys.argv[1], '127.0.0.1', 0, 1.0, 0, log_level='warning', latency=False)"
    )
    env = {**os.environ, "KEYPOLICY_BENCH_KEY": secret}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(policy)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    line = ""
    while "mock server on" not in line:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise RuntimeError("the mock server did not start")
    match = re.search(r"on (http://[\d.]+:\d+)/v1", line)
    if match is None:
        raise RuntimeError(f"no URL in: {line}")
    return process, match.group(1)


async def worker(
    host: str, port: int, secret: str, budget: list[int], deadline: float, statuses: dict[int, int]
) -> None:
    """One keep-alive connection sending requests one after another until the budget is spent."""
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = CONTENT_LENGTH.search(head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        await writer.wait_closed()


async def load(
    url: str, secret: str, requests: int, clients: int, seconds: float
) -> dict[str, object]:
    """Run the load; return the measurements."""
    host, port = url.removeprefix("http://").split(":")
    statuses: dict[int, int] = {}
    budget = [requests]
    began = time.perf_counter()
    deadline = began + seconds
    await asyncio.gather(
        *(worker(host, int(port), secret, budget, deadline, statuses) for _ in range(clients))
    )
    elapsed = time.perf_counter() - began
    served = sum(statuses.values())
    return {
        "requests": served,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(served / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    secret = "sk-bench-" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "bench.yaml"
        policy.write_text(POLICY)
        process, url = start_server(policy, secret)
        try:
            asyncio.run(load(url, secret, 200, args.clients, 5.0))  # warm-up
            result = asyncio.run(load(url, secret, args.requests, args.clients, args.seconds))
        finally:
            process.terminate()
            process.wait(10)
    rate = result["requests_per_second"]
    result["goal_requests_per_second"] = GOAL
    result["meets_goal"] = isinstance(rate, float) and rate >= GOAL
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"mock server: {result['requests_per_second']} requests/s "
        f"({result['requests']} requests, {result['clients']} connections, "
        f"{result['seconds']} s, statuses {result['statuses']}; goal {GOAL:g}/s)"
    )


if __name__ == "__main__":
    main()
