"""Waiting for a chat's answer (app.chat.jobs.wait_for_chat) against a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from app.chat import jobs
from app.chat.results import ChatResponse


def _run(coroutine):  # type: ignore[no-untyped-def]
    """Run on a loop of its own: ``asyncio.run`` leaves the main thread without a current event
    loop, and later tests (Pulumi's mocks) call ``asyncio.get_event_loop()``."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def test_the_longest_wait_stays_under_the_clients_socket_timeout() -> None:
    assert jobs._longest_blpop(aioredis.Redis(socket_timeout=30)) == jobs.DONE_WAIT_SECONDS
    assert jobs._longest_blpop(aioredis.Redis(socket_timeout=2.5)) == 2.5 * jobs.BLPOP_SHARE
    assert jobs._longest_blpop(aioredis.Redis(socket_timeout=0.5)) < 0.5
    assert jobs._longest_blpop(aioredis.Redis()) == jobs.DONE_WAIT_SECONDS  # no timeout at all


def test_a_waiter_reads_the_job_only_when_woken(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request waiting on a chat that ends 1.5 s later reads it twice (before it sleeps and
    once woken), not once more for every second it slept (issue 25: each read is a thread
    hand-off and Redis round trips)."""
    ended = asyncio.Event()
    reads: list[str] = []

    def view(job: SimpleNamespace, *, refresh: bool = True) -> ChatResponse:
        reads.append(job.id)
        return ChatResponse(id=job.id, status="finished" if ended.is_set() else "started")

    monkeypatch.setattr(jobs, "chat_view", view)
    job = SimpleNamespace(id=uuid.uuid4().hex)

    async def scenario() -> ChatResponse:
        notifier = aioredis.Redis.from_url(redis_url, socket_timeout=10)
        pusher = aioredis.Redis.from_url(redis_url)

        async def end_later() -> None:
            await asyncio.sleep(1.5)
            ended.set()
            await pusher.rpush(jobs.DONE_KEY.format(job.id), "1")

        try:
            ending = asyncio.create_task(end_later())
            got = await jobs.wait_for_chat(job, 20, notifier)
            await ending
            return got
        finally:
            await notifier.aclose()
            await pusher.aclose()

    assert _run(scenario()).status == "finished"
    assert len(reads) == 2


def test_a_blpop_that_meets_the_socket_timeout_is_one_more_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis stalled (an fsync) past the client's socket timeout: the waiter reads the job
    again instead of answering 503."""
    import redis

    calls: list[float] = []

    class StalledOnce:
        connection_pool = SimpleNamespace(connection_kwargs={"socket_timeout": 5.0})

        async def blpop(self, keys: list[str], timeout: float) -> None:
            calls.append(timeout)
            if len(calls) == 1:
                raise redis.TimeoutError("Timeout reading from socket")
            return None

    reads: list[str] = []

    def view(job: SimpleNamespace, *, refresh: bool = True) -> ChatResponse:
        reads.append(job.id)
        return ChatResponse(id=job.id, status="finished" if len(reads) > 1 else "started")

    monkeypatch.setattr(jobs, "chat_view", view)
    job = SimpleNamespace(id="j")
    got = _run(jobs.wait_for_chat(job, 20, StalledOnce()))  # type: ignore[arg-type]
    assert got.status == "finished"
    assert calls == [jobs.DONE_WAIT_SECONDS]
