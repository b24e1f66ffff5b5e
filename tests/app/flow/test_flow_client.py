"""FlowClient against the Flow emulator over real HTTP (loopback, free port)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.core.settings import load_settings
from app.flow import (
    ChatMessage,
    FlowAuthError,
    FlowBadResponseError,
    FlowClient,
    FlowRateLimitedError,
    FlowTimeoutError,
    FlowUnavailableError,
)
from app.flow.emulator import EmulatorConfig, EmulatorHandle, run_emulator

AGENT = "agent-under-test"
SECRET = "s3cr3t-value-that-must-not-leak"
TENANT = "tenant-under-test"
QUESTION = [{"role": "user", "content": "Hello Flow"}]


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(client_id=AGENT, client_secret=SECRET, tenant=TENANT, seed=7)
    with run_emulator(config) as handle:
        yield handle


class Recorder:
    """Collects on_request labels and requested sleeps (sleeps are not actually taken)."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.sleeps: list[float] = []

    def on_request(self, label: str, seconds: float) -> None:
        assert seconds >= 0
        self.labels.append(label)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def make_client(emu: EmulatorHandle, recorder: Recorder | None = None, **kw: Any) -> FlowClient:
    params: dict[str, Any] = {
        "base_url": emu.url,
        "tenant": TENANT,
        "agent": AGENT,
        "agent_secret": SECRET,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "timeout": 5.0,
    }
    if recorder is not None:
        params["on_request"] = recorder.on_request
        params["sleep"] = recorder.sleep
    params.update(kw)
    return FlowClient(**params)


def test_chat_returns_completion_and_caches_token(emulator: EmulatorHandle) -> None:
    with make_client(emulator) as client:
        completions = [client.chat(QUESTION) for _ in range(5)]
    assert all(c.content for c in completions)
    assert completions[0].object == "chat.completion"
    assert completions[0].model == "gpt-4o-mini"
    stats = emulator.stats()
    assert stats.token_calls == 1
    assert stats.chat_calls == 5
    assert stats.chat_responses == {"200": 5}


def test_accepts_chat_message_models_and_passes_max_tokens(emulator: EmulatorHandle) -> None:
    messages = [ChatMessage(role="user", content="one two three four five six seven")]
    with make_client(emulator) as client:
        completion = client.chat(messages, temperature=0.0, max_tokens=3)
    assert completion.finish_reason == "length"
    assert len(completion.content.split()) == 3


def test_concurrent_chats_share_one_token(emulator: EmulatorHandle) -> None:
    with make_client(emulator) as client, ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.chat(QUESTION).content, range(16)))
    assert len(results) == 16 and all(results)
    assert emulator.stats().token_calls == 1


def test_token_renewed_before_expiry(emulator: EmulatorHandle) -> None:
    emulator.configure(token_lifetime=100)  # renewal margin: max(30 s, 10 %) = 30 s
    now = [0.0]
    with make_client(emulator, clock=lambda: now[0]) as client:
        client.chat(QUESTION)
        now[0] = 65.0  # 35 s left: still fresh
        client.chat(QUESTION)
        assert emulator.stats().token_calls == 1
        now[0] = 75.0  # 25 s left: renewed before it expires
        client.chat(QUESTION)
    stats = emulator.stats()
    assert stats.token_calls == 2
    assert "401" not in stats.chat_responses  # the old token was never refused


def test_token_renewed_once_on_401(emulator: EmulatorHandle) -> None:
    rec = Recorder()
    with make_client(emulator, rec) as client:
        client.chat(QUESTION)
        reply = httpx.post(f"{emulator.url}/_emulator/config", json={"expire_tokens": True})
        assert reply.status_code == 200
        assert client.chat(QUESTION).content
    assert rec.labels == ["200", "401", "200"]
    assert rec.sleeps == []  # renewal retries immediately
    assert emulator.stats().token_calls == 2


def test_second_401_is_auth_error(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=2, fail_status=401)
    rec = Recorder()
    with make_client(emulator, rec) as client, pytest.raises(FlowAuthError) as info:
        client.chat(QUESTION)
    assert info.value.status == 401
    assert info.value.retryable is False
    assert rec.labels == ["401", "401"]
    assert emulator.stats().token_calls == 2


def test_recovers_after_two_failures(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=2)
    rec = Recorder()
    with make_client(emulator, rec) as client:
        assert client.chat(QUESTION).content
    assert rec.labels == ["500", "500", "200"]
    assert len(rec.sleeps) == 2
    assert all(0 < s <= 0.05 for s in rec.sleeps)


def test_gives_up_after_max_retries_with_clear_reason(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=100, fail_status=503)
    rec = Recorder()
    with (
        make_client(emulator, rec, max_retries=2) as client,
        pytest.raises(FlowUnavailableError) as info,
    ):
        client.chat(QUESTION)
    error = info.value
    assert rec.labels == ["503", "503", "503"]
    assert emulator.stats().chat_calls == 3
    assert error.attempts == 3
    assert error.status == 503
    assert error.retryable is True
    assert "returned 503 three times in a row" in error.reason
    assert "injected failure" in error.reason  # excerpt of the last body
    assert str(error) == error.reason


def test_backoff_is_exponential_and_capped(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=100)
    rec = Recorder()
    client = make_client(emulator, rec, max_retries=5, backoff_base=0.01, backoff_max=0.05)
    with client, pytest.raises(FlowUnavailableError):
        client.chat(QUESTION)
    ceilings = [0.01, 0.02, 0.04, 0.05, 0.05]
    assert len(rec.sleeps) == 5
    for slept, ceiling in zip(rec.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


def test_429_honours_retry_after(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=1, fail_status=429)  # the emulator sends Retry-After: 1
    rec = Recorder()
    with make_client(emulator, rec, backoff_max=5.0) as client:
        assert client.chat(QUESTION).content
    assert rec.labels == ["429", "200"]
    assert rec.sleeps == [1.0]


def test_429_retry_after_capped_then_rate_limited_error(emulator: EmulatorHandle) -> None:
    emulator.configure(rate_limit_rate=1.0)
    rec = Recorder()
    with (
        make_client(emulator, rec, max_retries=2, backoff_max=0.2) as client,
        pytest.raises(FlowRateLimitedError) as info,
    ):
        client.chat(QUESTION)
    assert rec.labels == ["429", "429", "429"]
    assert rec.sleeps == [0.2, 0.2]
    assert info.value.status == 429
    assert "429" in info.value.reason


def test_timeout_raises_flow_timeout_error(emulator: EmulatorHandle) -> None:
    emulator.configure(latency_ms=400)
    rec = Recorder()
    with (
        make_client(emulator, rec, timeout=0.05, max_retries=1) as client,
        pytest.raises(FlowTimeoutError) as info,
    ):
        client.chat(QUESTION)
    assert rec.labels == ["timeout", "timeout"]
    assert "timed out" in info.value.reason
    assert info.value.retryable is True


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rec = Recorder()
    client = FlowClient(
        base_url=f"http://127.0.0.1:{port}",
        tenant=TENANT,
        agent=AGENT,
        agent_secret=SECRET,
        max_retries=1,
        sleep=rec.sleep,
    )
    with client, pytest.raises(FlowUnavailableError) as info:
        client.chat(QUESTION)
    assert "could not be reached twice in a row" in info.value.reason
    assert len(rec.sleeps) == 1  # the token call was retried once


def test_bad_credentials_not_retried(emulator: EmulatorHandle) -> None:
    rec = Recorder()
    with (
        make_client(emulator, rec, agent_secret="wrong") as client,
        pytest.raises(FlowAuthError) as info,
    ):
        client.chat(QUESTION)
    assert info.value.retryable is False
    assert info.value.status == 401
    assert emulator.stats().token_calls == 1
    assert emulator.stats().chat_calls == 0
    assert rec.sleeps == []
    assert rec.labels == []  # on_request observes chat completions only


def test_forbidden_app_is_auth_error(emulator: EmulatorHandle) -> None:
    emulator.configure(app_to_access="other-app")
    with make_client(emulator) as client, pytest.raises(FlowAuthError) as info:
        client.check()
    assert info.value.status == 403


def test_other_4xx_is_bad_response_not_retried(emulator: EmulatorHandle) -> None:
    emulator.configure(fail_next=1, fail_status=404)
    rec = Recorder()
    with make_client(emulator, rec) as client, pytest.raises(FlowBadResponseError) as info:
        client.chat(QUESTION)
    assert rec.labels == ["404"]
    assert info.value.status == 404
    assert info.value.retryable is False


def test_unparseable_completion_is_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        return httpx.Response(200, json={"id": "x", "created": 1, "model": "m", "choices": []})

    client = make_client_for_transport(httpx.MockTransport(handler))
    with client, pytest.raises(FlowBadResponseError) as info:
        client.chat(QUESTION)
    assert "choices" in info.value.reason


def make_client_for_transport(transport: httpx.BaseTransport) -> FlowClient:
    return FlowClient(
        base_url="http://flow.invalid",
        tenant=TENANT,
        agent=AGENT,
        agent_secret=SECRET,
        transport=transport,
    )


def test_check_obtains_and_reuses_token(emulator: EmulatorHandle) -> None:
    with make_client(emulator) as client:
        assert "token_cached=False" in repr(client)
        client.check()
        client.check()
        assert "token_cached=True" in repr(client)
    assert emulator.stats().token_calls == 1


def test_from_settings(emulator: EmulatorHandle) -> None:
    settings = load_settings(
        FLOW_BASE_URL=emulator.url,
        FLOW_TENANT=TENANT,
        FLOW_AGENT=AGENT,
        FLOW_AGENT_SECRET=SECRET,
        FLOW_MODEL="model-x",
    )
    with FlowClient.from_settings(settings, backoff_base=0.01) as client:
        assert client.model == "model-x"
        assert client.backoff_base == 0.01
        assert client.chat(QUESTION).model == "model-x"


def test_secrets_never_leak(emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    emulator.configure(fail_next=1)
    with make_client(emulator, max_retries=0) as client:
        with pytest.raises(FlowUnavailableError) as info:
            client.chat(QUESTION)
        errors.append(info.value)
        client.chat(QUESTION)
        tokens = emulator.state.issued_tokens()
        emulator.configure(fail_next=2, fail_status=401)
        with pytest.raises(FlowAuthError) as info:
            client.chat(QUESTION)
        errors.append(info.value)
        client_repr = repr(client)
    with make_client(emulator, agent_secret=SECRET + "-wrong") as bad:
        with pytest.raises(FlowAuthError) as info:
            bad.chat(QUESTION)
        errors.append(info.value)
        client_repr += repr(bad)
    assert tokens
    assert caplog.records  # something was logged at all
    texts = [caplog.text, client_repr] + [str(e) for e in errors] + [repr(e) for e in errors]
    for text in texts:
        assert SECRET not in text
        for token in tokens:
            assert token not in text


def test_error_excerpt_redacts_echoed_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"upstream choked on {request.content.decode()}")

    client = make_client_for_transport(httpx.MockTransport(handler))
    client.max_retries = 0
    with client, pytest.raises(FlowUnavailableError) as info:
        client.check()
    assert "502" in info.value.reason
    assert SECRET not in info.value.reason
    assert "***" in info.value.reason


def test_missing_credentials_are_named_not_a_validation_dump() -> None:
    from app.flow.client import FlowClient
    from app.flow.errors import FlowAuthError

    client = FlowClient(base_url="http://127.0.0.1:9", tenant="t", agent="", agent_secret="")
    with pytest.raises(FlowAuthError) as caught:
        client.check()
    assert "FLOW_AGENT, FLOW_AGENT_SECRET" in caught.value.reason
    assert "pydantic" not in caught.value.reason


def test_the_cached_token_never_shows_in_a_repr(emulator: EmulatorHandle) -> None:
    with make_client(emulator) as client:
        client.chat([{"role": "user", "content": "hi"}])
        token = client._token
        assert token is not None and token.value
        assert token.value not in repr(token)
        assert token.value not in repr(client)
