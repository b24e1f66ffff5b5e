"""Streamed chat completions: the Flow client against the in-process emulator streaming
OpenAI's SSE chunks (per-token latency, mid-stream failure, a gateway that does not stream)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.flow.client import FlowClient
from app.flow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from app.flow.errors import FlowStreamError, FlowUnavailableError

PROMPT = (
    "Sources:\n[1] runbook.md > Restart\nRestart the worker with kubectl rollout restart. "
    "Then watch the queue drain.\n\nQuestion: How do I restart the worker?"
)
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(EmulatorConfig()) as handle:
        yield handle


@pytest.fixture
def client(emulator: EmulatorHandle) -> Iterator[FlowClient]:
    cfg = emulator.config
    with FlowClient(
        base_url=emulator.url,
        tenant=cfg.tenant,
        agent=cfg.client_id,
        agent_secret=cfg.client_secret,
        max_retries=2,
        backoff_base=0.01,
        backoff_max=0.02,
    ) as flow:
        yield flow


def test_deltas_arrive_one_by_one_and_add_up_to_the_plain_answer(emulator, client) -> None:
    emulator.configure(token_latency_ms=40)
    arrivals: list[tuple[float, str]] = []
    streamed = client.chat_stream(MESSAGES, lambda t: arrivals.append((time.monotonic(), t)))
    plain = client.chat(MESSAGES)
    assert len(arrivals) > 3
    assert "".join(t for _, t in arrivals) == streamed.content == plain.content
    assert arrivals[-1][0] - arrivals[0][0] >= 0.04 * (len(arrivals) - 1) * 0.9  # not batched
    assert streamed.usage == plain.usage and streamed.usage.completion_tokens > 0
    assert streamed.finish_reason == "stop"


def test_a_gateway_that_does_not_stream_gives_one_delta(emulator, client) -> None:
    emulator.configure(streaming=False)
    pieces: list[str] = []
    completion = client.chat_stream(MESSAGES, pieces.append)
    assert pieces == [completion.content] and "restart" in completion.content.lower()


def test_a_failure_mid_stream_raises_with_a_reason_and_is_not_retried(emulator, client) -> None:
    emulator.configure(stream_fail_after=2)
    pieces: list[str] = []
    with pytest.raises(FlowStreamError, match="mid-stream") as failure:
        client.chat_stream(MESSAGES, pieces.append)
    assert len(pieces) == 2
    assert failure.value.retryable is False
    assert emulator.stats().chat_calls == 1


def test_failures_before_the_stream_starts_are_retried(emulator, client) -> None:
    emulator.configure(fail_next=2, fail_status=503)
    pieces: list[str] = []
    completion = client.chat_stream(MESSAGES, pieces.append)
    assert "".join(pieces) == completion.content
    assert emulator.stats().chat_responses["503"] == 2
    emulator.configure(fail_next=3, fail_status=503)
    with pytest.raises(FlowUnavailableError, match="503"):
        client.chat_stream(MESSAGES, pieces.append)
