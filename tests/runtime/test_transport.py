"""The transport's own rules, seen on the wire through httpx2's MockTransport (no server)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from keypolicy import PolicyRejected, Runtime
from keypolicy.ledger import read_ledger
from keypolicy.runtime import FakeClock, MissingKeysError
from keypolicy.runtime.answers import StreamReader
from keypolicy.runtime.secrets import PLACEHOLDER, read_env_file, redact
from keypolicy.runtime.transport import AsyncPolicyTransport, PolicyTransport
from tests.core.test_store_failures import FailingStore
from tests.runtime.conftest import KEYS, assert_no_canary, ledger_rows, wait_until

MESSAGES = [{"role": "user", "content": "hello"}]
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
}


def _client(
    runtime: Runtime, domain: str, seen: list[httpx2.Request], answer: Any = None
) -> openai.OpenAI:
    def upstream(request: httpx2.Request) -> httpx2.Response:
        # As it was on the wire (the caller's own request gets its placeholder back after).
        wire = httpx2.Request(request.method, request.url, headers=request.headers.copy())
        wire._content = request.read()
        seen.append(wire)
        if answer is not None:
            return answer(request)
        return httpx2.Response(200, json=ANSWER)

    transport = PolicyTransport(runtime._context, domain, httpx2.MockTransport(upstream))
    return openai.OpenAI(
        api_key=PLACEHOLDER,
        base_url="http://upstream.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


@pytest.fixture
def runtime(policy_path: Path, keys: dict[str, str], tmp_path: Path) -> Any:
    with Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite", clock=FakeClock()) as rt:
        yield rt


def test_the_chosen_keys_secret_goes_out_and_no_project_header(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_of_someone_else")
    seen: list[httpx2.Request] = []
    _client(runtime, "chat", seen).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
    )
    _client(runtime, "chat", seen).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
    )
    secrets = {r.headers["authorization"] for r in seen}
    assert secrets == {
        f"Bearer {KEYS['RT_TEST_KEY_ROOMY_A']}",
        f"Bearer {KEYS['RT_TEST_KEY_ROOMY_B']}",
    }
    assert all("openai-project" not in r.headers for r in seen)
    assert all(PLACEHOLDER not in str(r.headers) for r in seen)


def test_a_stream_that_did_not_ask_for_usage_is_asked_for_it(runtime: Runtime) -> None:
    seen: list[httpx2.Request] = []

    def stream(request: httpx2.Request) -> httpx2.Response:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"content": "hi"}}]},
            {**chunk, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx2.Response(
            200, content=body.encode(), headers={"content-type": "text/event-stream"}
        )

    chunks = list(
        _client(runtime, "chat", seen, stream).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, stream=True
        )
    )
    assert json.loads(seen[0].content)["stream_options"] == {"include_usage": True}
    assert len(chunks) == 1
    row = ledger_rows(runtime).iloc[0]
    assert (row.prompt_tokens, row.completion_tokens, row.usage_estimated) == (5, 1, False)


def test_a_store_that_fails_refuses_the_call_without_sending_it(
    policy_path: Path, keys: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore(fail_from=1, span=1_000_000, only="acquire")  # the store is down
    with Runtime.from_file(
        policy_path, ledger=tmp_path / "u.sqlite", clock=FakeClock(), store=store
    ) as runtime:
        seen: list[httpx2.Request] = []
        with caplog.at_level(logging.ERROR, "keypolicy"), pytest.raises(PolicyRejected) as refused:
            _client(runtime, "chat", seen).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
            )
        assert refused.value.reason == "store_error"
        assert seen == []
        assert "store down (acquire" in caplog.text
        assert runtime.engine.waiting() == []


def test_missing_keys_are_named_in_one_error_without_any_secret(
    policy_path: Path, keys: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RT_TEST_KEY_TIGHT")
    monkeypatch.delenv("RT_TEST_KEY_ROOMY_B")
    with pytest.raises(MissingKeysError) as missing:
        Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite")
    assert "RT_TEST_KEY_TIGHT" in str(missing.value)
    assert "RT_TEST_KEY_ROOMY_B" in str(missing.value)
    assert_no_canary(missing.value)


def test_keys_can_come_from_an_env_file_under_the_environment(
    policy_path: Path, keys: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RT_TEST_KEY_TIGHT")
    env = tmp_path / ".env"
    env.write_text('# keys\nexport RT_TEST_KEY_TIGHT="sk-canary-from-file-0001"\n')
    assert read_env_file(env) == {"RT_TEST_KEY_TIGHT": "sk-canary-from-file-0001"}
    with Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite", env_file=env) as runtime:
        assert "tight" in runtime._keys
        assert "sk-canary-from-file" not in repr(runtime._keys)
    assert redact("key sk-canary-from-file-0001 here") == "key [key tight] here"


def test_clients_refuse_options_that_would_bypass_the_policy(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        runtime.openai("chat", max_retries=2)
    with pytest.raises(ValueError, match="api_key"):
        runtime.openai("chat", api_key="sk-other")
    with pytest.raises(ValueError, match="no domain 'nope'"):
        runtime.openai("nope")


def test_prometheus_counts_what_the_ledger_records(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    from prometheus_client import CollectorRegistry

    from keypolicy.prometheus import PrometheusMetrics

    registry = CollectorRegistry()
    with Runtime.from_file(
        policy_path,
        ledger=tmp_path / "u.sqlite",
        clock=FakeClock(),
        prometheus=PrometheusMetrics(registry),
    ) as runtime:
        seen: list[httpx2.Request] = []
        client = _client(runtime, "chat", seen)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    labels = {"domain": "chat", "project": "roomy", "model": "gpt-4o-mini", "outcome": "ok"}
    total = sum(
        registry.get_sample_value("keypolicy_requests_total", {**labels, "key": key}) or 0
        for key in ("roomy-a", "roomy-b")
    )
    assert total == 3


def test_closing_the_runtime_refuses_the_calls_still_waiting(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    runtime = Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite", clock=FakeClock())
    seen: list[httpx2.Request] = []
    client = _client(runtime, "urgent", seen)  # 5 requests a minute
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
        wait_until(lambda: runtime.pending_calls == 1, "the sixth call queued")
        runtime.close()
        refused = waiting.exception(10)
    assert isinstance(refused, PolicyRejected)
    assert "Runtime was closed" in str(refused)
    rows = read_ledger(runtime.ledger.path)
    assert len(rows) == 6
    assert runtime.pending_calls == 0


def test_a_closed_event_loop_does_not_stop_other_calls_being_answered(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    clock = FakeClock()
    with Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite", clock=clock) as runtime:
        seen: list[httpx2.Request] = []
        client = _client(runtime, "urgent", seen)
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        # An async call queues, then its event loop goes away without it.
        loop = asyncio.new_event_loop()
        transport = AsyncPolicyTransport(
            runtime._context, "urgent", httpx2.MockTransport(lambda r: httpx2.Response(200))
        )
        request = httpx2.Request(
            "POST",
            "http://upstream.test/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 5},
        )
        task = loop.create_task(transport.handle_async_request(request))
        loop.run_until_complete(asyncio.sleep(0.01))
        assert not task.done()
        loop.close()
        with ThreadPoolExecutor(1) as pool:
            behind = pool.submit(
                client.chat.completions.create,
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=5,
            )
            wait_until(lambda: len(runtime.engine.waiting()) == 2, "both queued")
            clock.advance(6.0)  # past max_wait: both expire; the thread must hear of it
            assert isinstance(behind.exception(10), PolicyRejected)
        assert runtime.pending_calls == 1  # the call whose loop went away never ends
        runtime.close(drain_s=0.0)


def test_a_failing_ledger_never_takes_the_answer_away(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: Any) -> None:
        raise OSError(28, "No space left on device")

    runtime.ledger.write = broken  # type: ignore[method-assign]
    seen: list[httpx2.Request] = []
    with caplog.at_level(logging.ERROR, "keypolicy"):
        answer = _client(runtime, "chat", seen).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert answer.usage is not None
    assert runtime.records_lost == 1
    assert "No space left" in caplog.text


def test_pass_through_calls_drop_a_foreign_project_header(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_foreign")
    seen: list[httpx2.Request] = []

    def models(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"object": "list", "data": []})

    list(_client(runtime, "chat", seen, models).models.list())
    assert seen[0].url.path == "/v1/models"
    assert "openai-project" not in seen[0].headers
    assert seen[0].headers["authorization"] == f"Bearer {KEYS['RT_TEST_KEY_ROOMY_A']}"


def test_an_unterminated_usage_chunk_at_the_end_stays_hidden() -> None:
    reader = StreamReader(hide_usage=True)
    last = json.dumps({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    assert reader.feed(f"data: {last}".encode()) == b""
    assert reader.rest() == b""
    assert reader.usage is not None


def test_a_secret_in_a_logged_exception_is_redacted(
    runtime: Runtime, captured: list[logging.LogRecord]
) -> None:
    try:
        raise ValueError(f"bad key {KEYS['RT_TEST_KEY_TIGHT']}")
    except ValueError:
        logging.getLogger("somebody").exception("it failed")
    (record,) = [r for r in captured if r.name == "somebody"]
    assert record.exc_text is not None
    assert "[key tight]" in record.exc_text
    assert_no_canary(record.exc_text, logging.Formatter().format(record))


def test_the_callers_own_request_never_keeps_the_secret(runtime: Runtime) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": {"message": "bad", "type": "x", "code": None}})

    seen: list[httpx2.Request] = []
    with pytest.raises(openai.BadRequestError) as bad:
        _client(runtime, "chat", seen, refuse).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert seen[0].headers["authorization"].startswith("Bearer sk-canary")
    assert bad.value.request.headers["authorization"] == f"Bearer {PLACEHOLDER}"


def test_a_redirect_is_never_followed_with_the_key(runtime: Runtime) -> None:
    seen: list[httpx2.Request] = []

    def redirect(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(307, headers={"location": "http://elsewhere.test/v1/steal"})

    transport = runtime.transport("chat")
    transport._inner = httpx2.MockTransport(lambda r: (seen.append(r), redirect(r))[1])
    client = runtime.openai("chat")
    client._client._transport = transport  # the runtime's own client, over a redirecting wire
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert len(seen) == 1  # sent once, to the provider's host; never on to the Location
    assert ledger_rows(runtime).iloc[0].outcome != "ok"


def test_clients_refuse_calls_once_the_runtime_is_closed(runtime: Runtime) -> None:
    client = runtime.openai("chat")
    runtime.close()
    with pytest.raises(PolicyRejected, match="closed"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)


def test_a_call_in_flight_when_the_runtime_closes_is_not_retried(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    runtime = Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite", clock=FakeClock())
    sent, release = threading.Event(), threading.Event()

    def failing(request: httpx2.Request) -> httpx2.Response:
        sent.set()
        release.wait(10)
        return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})

    client = _client(runtime, "chat", [], failing)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
        assert sent.wait(10)
        runtime.close(drain_s=0.0)  # the answer comes after the drain: nothing may wait for it
        release.set()
        assert isinstance(call.exception(10), openai.InternalServerError)
    assert runtime.pending_calls == 0


def test_an_async_service_closes_the_runtime_without_blocking_its_loop(
    policy_path: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    async def main() -> int:
        async with Runtime.from_file(policy_path, ledger=tmp_path / "u.sqlite") as runtime:

            async def slow(request: httpx2.Request) -> httpx2.Response:
                await asyncio.sleep(0.05)  # in flight while the runtime closes
                return httpx2.Response(200, json=ANSWER)

            transport = AsyncPolicyTransport(runtime._context, "chat", httpx2.MockTransport(slow))
            client = openai.AsyncOpenAI(
                api_key=PLACEHOLDER,
                base_url="http://upstream.test/v1",
                max_retries=0,
                http_client=httpx2.AsyncClient(transport=transport),
            )
            calls = [
                asyncio.create_task(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
                    )
                )
                for _ in range(5)
            ]
            while runtime._context.open_calls.begun < 5:
                await asyncio.sleep(0)
            await runtime.aclose()  # the calls in flight end meanwhile, and are recorded
            await asyncio.gather(*calls)
            return len(read_ledger(runtime.ledger.path))

    assert asyncio.run(main()) == 5
