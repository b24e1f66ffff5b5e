"""The official ``openai`` SDK (sync and async) against the service: plain, streaming,
multi-turn, real usage, sources, and errors mapped to the SDK's exception types."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai import AsyncOpenAI, OpenAI

from app.api.main import create_app
from app.core.settings import load_settings

RESTART = "How do I restart the worker?"


@pytest.fixture
def client(live_service) -> Iterator[OpenAI]:
    live_service.emulator.reset()
    yield OpenAI(base_url=f"{live_service.base_url}/v1", api_key="unused", max_retries=0)
    live_service.emulator.reset()


def test_plain_completion_carries_flow_usage_and_sources(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="flowchat", messages=[{"role": "user", "content": RESTART}]
    )
    assert "restart" in (completion.choices[0].message.content or "").lower()
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sources = completion.model_extra["sources"]
    assert sources[0]["document"] == "runbook.md"


def test_streaming_gives_chunks_that_add_up_to_the_answer(live_service, client) -> None:
    live_service.emulator.configure(token_latency_ms=20)
    stream = client.chat.completions.create(
        model="flowchat",
        messages=[{"role": "user", "content": RESTART}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    text = "".join(p for p in pieces if p)
    assert len([p for p in pieces if p]) > 3
    assert "restart" in text.lower()
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    plain = client.chat.completions.create(
        model="flowchat", messages=[{"role": "user", "content": RESTART}]
    )
    assert text.strip() == plain.choices[0].message.content  # same answer either way


def test_multi_turn_messages_steer_retrieval(client: OpenAI) -> None:
    """A follow-up that names nothing only finds the runbook's section through the history."""
    follow_up = "And where is that documented?"
    history = [
        {"role": "user", "content": "How do I rotate the Flow credentials?"},
        {"role": "assistant", "content": "Run the rotation workflow. [1]"},
        {"role": "user", "content": follow_up},
    ]
    alone = client.chat.completions.create(
        model="flowchat", messages=[{"role": "user", "content": follow_up}]
    )
    with_history = client.chat.completions.create(model="flowchat", messages=history)
    top_alone = [s["heading"] or "" for s in alone.model_extra["sources"]]
    top_history = [s["heading"] or "" for s in with_history.model_extra["sources"]]
    assert any("rotat" in (h or "").lower() for h in top_history[:3]), top_history
    assert top_alone != top_history


def test_async_client_plain_and_streaming(live_service) -> None:
    async def run() -> tuple[str, str]:
        async with AsyncOpenAI(
            base_url=f"{live_service.base_url}/v1", api_key="unused", max_retries=0
        ) as aclient:
            plain = await aclient.chat.completions.create(
                model="flowchat", messages=[{"role": "user", "content": RESTART}]
            )
            stream = await aclient.chat.completions.create(
                model="flowchat", messages=[{"role": "user", "content": RESTART}], stream=True
            )
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            return plain.choices[0].message.content or "", text

    # a loop of its own, never the thread's current one: asyncio.run() would leave the main
    # thread without an event loop, which later Pulumi mock tests need
    loop = asyncio.new_event_loop()
    try:
        plain, streamed = loop.run_until_complete(run())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    assert "restart" in plain.lower()
    assert streamed.strip() == plain


def test_models_lists_the_service_model(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["flowchat"]


def test_flow_failing_mid_stream_raises_an_api_error(live_service, client) -> None:
    live_service.emulator.configure(stream_fail_after=2)
    stream = client.chat.completions.create(
        model="flowchat", messages=[{"role": "user", "content": RESTART}], stream=True
    )
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(stream)


@pytest.fixture
def guarded(redis_url: str) -> Iterator[TestClient]:
    """The API in process, with a key and a one-job queue (no worker: nothing is answered)."""
    settings = load_settings(REDIS_URL=redis_url, API_KEYS="sdk-key", MAX_QUEUE_DEPTH=1)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def sdk(http: httpx.Client, key: str) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


def test_errors_have_openai_shape_and_map_to_sdk_exceptions(guarded: TestClient) -> None:
    messages = [{"role": "user", "content": RESTART}]
    with pytest.raises(openai.AuthenticationError) as wrong:
        sdk(guarded, "wrong").chat.completions.create(model="flowchat", messages=messages)
    assert wrong.value.status_code == 401
    assert wrong.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        sdk(guarded, "wrong").models.list()
    missing = guarded.get("/v1/models")  # no key at all
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.UnprocessableEntityError, match="user message"):
        sdk(guarded, "sdk-key").chat.completions.create(
            model="flowchat", messages=[{"role": "system", "content": "no question"}]
        )
    good = sdk(guarded, "sdk-key")
    # the first question fills the one-job queue (it waits for a worker that never comes) ...
    guarded.post("/api/chat", json={"message": RESTART}, headers={"X-API-Key": "sdk-key"})
    # ... so the next one is refused with 429 + Retry-After
    with pytest.raises(openai.RateLimitError) as limited:
        good.chat.completions.create(model="flowchat", messages=messages)
    assert limited.value.response.headers["retry-after"]
    assert "queue is full" in limited.value.message
    with pytest.raises(openai.RateLimitError):
        good.chat.completions.create(model="flowchat", messages=messages, stream=True)
