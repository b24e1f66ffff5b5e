"""Streaming answers end to end (API -> flow_tasks -> worker -> Flow emulator streaming ->
Redis Stream -> SSE), on the real service started the way `make run` starts it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
import redis
from rq import Worker
from rq.job import Job
from service_testlib import wait_for_answer

from app.chat.stream import stream_key
from app.core.redis_clients import JOB_SERIALIZER
from tests.app.api.sse import events, read_stream

QUESTION = "How do I restart the worker?"


@pytest.fixture
def api(live_service) -> httpx.Client:
    live_service.emulator.reset()
    with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
        yield client
    live_service.emulator.reset()


def submit(api: httpx.Client, message: str = QUESTION, **extra) -> dict:
    response = api.post("/api/chat", json={"message": message, **extra})
    assert response.status_code == 202, response.text
    return response.json()


def text_of(received: list) -> str:
    text = ""
    for event in received:
        if event.event == "delta":
            text += event.json()["text"]
        elif event.event == "reset":
            text = event.json()["text"]
    return text


def test_tokens_arrive_before_the_answer_is_complete(live_service, api) -> None:
    live_service.emulator.configure(token_latency_ms=60)
    accepted = submit(api)
    assert accepted["stream_url"] == f"/api/chat/{accepted['id']}/stream"
    received = read_stream(api, accepted["stream_url"])
    kinds = [e.event for e in received]
    assert kinds[0] == "sources" and kinds[-1] == "done", kinds
    deltas = [e for e in received if e.event == "delta"]
    assert len(deltas) > 3, kinds
    # the first piece arrived while the rest was still being written (60 ms between tokens)
    assert deltas[0].at < received[-1].at - 0.1
    stored = wait_for_answer(api, accepted["id"])
    assert stored["status"] == "finished"
    assert text_of(received).strip() == stored["answer"]  # the stored result is the same text
    assert received[-1].json()["answer"] == stored["answer"]
    assert received[0].json()[0]["document"] == stored["sources"][0]["document"]
    assert stored["usage"]["completion_tokens"] > 0
    assert stored["usage"]["total_tokens"] == (
        stored["usage"]["prompt_tokens"] + stored["usage"]["completion_tokens"]
    )
    assert stored["timings"]["first_token_seconds"] <= stored["timings"]["total_seconds"]


def test_a_late_client_gets_the_whole_answer_from_the_start(api) -> None:
    accepted = submit(api)
    done = wait_for_answer(api, accepted["id"])
    assert done["status"] == "finished"
    received = read_stream(api, accepted["stream_url"])
    assert text_of(received).strip() == done["answer"]
    assert received[-1].event == "done"


def test_a_stream_that_expired_replays_the_stored_answer(live_service, api) -> None:
    accepted = submit(api)
    done = wait_for_answer(api, accepted["id"])
    redis.Redis.from_url(live_service.redis_url).delete(stream_key(accepted["id"]))
    received = read_stream(api, accepted["stream_url"])
    assert text_of(received) == done["answer"]
    assert [e.event for e in received][-2:] == ["sources", "done"]


def test_flow_failing_mid_stream_gives_an_error_event_with_a_reason(live_service, api) -> None:
    live_service.emulator.configure(stream_fail_after=3, token_latency_ms=20)
    accepted = submit(api)
    received = read_stream(api, accepted["stream_url"])
    assert received[-1].event == "error", [e.event for e in received]
    reason = received[-1].json()["reason"]
    assert "Flow" in reason and "mid-stream" in reason, reason
    assert 1 <= len([e for e in received if e.event == "delta"]) <= 3
    failed = wait_for_answer(api, accepted["id"])
    assert failed["status"] == "failed" and failed["error"] == reason


def test_gateway_that_does_not_stream_still_answers_in_one_chunk(live_service, api) -> None:
    live_service.emulator.configure(streaming=False)
    accepted = submit(api)
    received = read_stream(api, accepted["stream_url"])
    deltas = [e for e in received if e.event == "delta"]
    assert len(deltas) == 1 and received[-1].event == "done"
    assert deltas[0].json()["text"].strip() == received[-1].json()["answer"]


def test_unknown_job_stream_is_404(api) -> None:
    response = api.get("/api/chat/no-such-job/stream")
    assert response.status_code == 404
    assert "no-such-job" in response.json()["detail"]


def test_worker_killed_mid_stream_the_client_sees_one_coherent_answer(live_service, api) -> None:
    connection = redis.Redis.from_url(live_service.redis_url)
    live_service.emulator.configure(token_latency_ms=300)
    accepted = submit(api)
    job = Job.fetch(accepted["id"], connection=connection, serializer=JOB_SERIALIZER)
    with api.stream("GET", accepted["stream_url"], timeout=90) as response:
        received, killed = [], False
        for event in events(response):
            received.append(event)
            if not killed and len([e for e in received if e.event == "delta"]) == 2:
                killed = True
                job.refresh()
                worker = Worker.find_by_key(
                    Worker.redis_worker_namespace_prefix + job.worker_name, connection=connection
                )
                assert worker is not None and worker.pid
                os.kill(worker.pid, signal.SIGKILL)
                live_service.emulator.configure(token_latency_ms=0)
        # the stream went on after the kill: the sweep requeued the job and its retry streamed
    kinds = [e.event for e in received]
    assert kinds[-1] == "done", kinds
    stored = wait_for_answer(api, accepted["id"])
    assert stored["status"] == "finished"
    assert text_of(received).strip() == stored["answer"]
    assert "reset" not in kinds  # the retry said the same thing; nothing was sent twice
    # the pool replaced the killed worker (a polling limit, not a timing)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # readiness details are for the admin token only (issue 10)
        admin = {"Authorization": f"Bearer {live_service.admin_token}"}
        ready = api.get("/api/health/ready", headers=admin)
        if ready.status_code == 200 and ready.json()["checks"]["workers"]["count"] == 2:
            break
        time.sleep(0.2)
