"""The per-job answer stream: writer and follower over a real Redis, retries merged into one
coherent answer."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from app.chat.stream import STREAM_MAXLEN, STREAM_TTL_SECONDS, StreamWriter, follow, stream_key


def collect(redis_url: str, job_id: str, outcome=None, deadline: float = 5.0) -> list:
    async def run() -> list:
        connection = aioredis.Redis.from_url(redis_url)

        async def none():
            return outcome

        try:
            return [e async for e in follow(connection, job_id, none, deadline)]
        finally:
            await connection.aclose()

    return asyncio.run(run())


def test_a_late_reader_gets_every_event_from_the_start(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    writer = StreamWriter(connection, "job1")
    writer.start()
    writer.sources([{"n": 1}])
    for piece in ("Restart", " the", " worker."):
        writer.delta(piece)
    writer.done({"answer": "Restart the worker."})
    events = collect(redis_url, "job1")
    assert [e.type for e in events] == ["sources", "delta", "delta", "delta", "done"]
    assert "".join(e.data for e in events if e.type == "delta") == "Restart the worker."
    ttl = connection.ttl(stream_key("job1"))
    assert 0 < ttl <= STREAM_TTL_SECONDS
    assert STREAM_MAXLEN >= 1000


def test_a_retry_that_repeats_the_answer_sends_nothing_twice(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    first = StreamWriter(connection, "job2")
    first.start()
    first.delta("Restart")
    first.delta(" the")  # the worker dies here
    retry = StreamWriter(connection, "job2")
    retry.start()
    for piece in ("Restart", " the", " worker."):
        retry.delta(piece)
    retry.done({"answer": "Restart the worker."})
    events = collect(redis_url, "job2")
    assert [e.type for e in events] == ["delta", "delta", "delta", "done"]
    assert "".join(e.data for e in events if e.type == "delta") == "Restart the worker."


def test_a_retry_that_says_something_else_resets_the_text_once(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    first = StreamWriter(connection, "job3")
    first.start()
    first.delta("Restart the pods")
    retry = StreamWriter(connection, "job3")
    retry.start()
    retry.delta("Roll out")
    retry.delta(" again.")
    retry.done({"answer": "Roll out again."})
    events = collect(redis_url, "job3")
    assert [(e.type, e.data) for e in events[:3]] == [
        ("delta", "Restart the pods"),
        ("reset", "Roll out"),
        ("delta", " again."),
    ]


def test_a_job_that_ended_without_stream_events_is_reported(redis_url: str) -> None:
    failed = collect(redis_url, "gone", ("error", {"reason": "the worker stopped"}))
    assert [(e.type, e.data) for e in failed] == [("error", {"reason": "the worker stopped"})]
    stored = collect(redis_url, "old", ("done", {"answer": "Stored.", "sources": [{"n": 1}]}))
    assert [e.type for e in stored] == ["delta", "sources", "done"]
    assert stored[0].data == "Stored."


def test_a_reader_gives_up_after_its_deadline_with_a_reason(redis_url: str) -> None:
    events = collect(redis_url, "never", None, deadline=0.3)
    assert [e.type for e in events] == ["error"]
    assert "no answer within" in events[0].data["reason"]
