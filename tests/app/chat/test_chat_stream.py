"""The per-job answer stream: writer and follower over a real Redis, retries merged into one
coherent answer."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from app.chat.stream import (
    DELTA_FLUSH_SECONDS,
    STREAM_MAXLEN,
    STREAM_TTL_SECONDS,
    StreamWriter,
    follow,
    stream_key,
)


def collect(redis_url: str, job_id: str, outcome=None, deadline: float = 5.0) -> list:
    async def run() -> list:
        connection = aioredis.Redis.from_url(redis_url)

        async def none():
            return outcome

        try:
            return [e async for e in follow(connection, job_id, none, deadline)]
        finally:
            await connection.aclose()

    # a loop of its own, never the thread's current one: asyncio.run() would leave the main
    # thread without an event loop, which later Pulumi mock tests need
    loop = asyncio.new_event_loop()
    try:
        events = loop.run_until_complete(run())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return events


def test_a_late_reader_gets_every_event_from_the_start(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    writer = StreamWriter(connection, "job1", flush_seconds=0)
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


def test_fast_pieces_are_written_together_after_the_first(redis_url: str) -> None:
    """The first piece is written at once; pieces that follow within the flush interval wait
    and go out together, with the next write after the interval or with done/error."""
    connection = redis.Redis.from_url(redis_url)
    key = stream_key("job-batched")
    writer = StreamWriter(connection, "job-batched", flush_seconds=60)
    writer.start()
    writer.delta("Restart")
    assert connection.xlen(key) == 2  # start + the first piece, at once
    words = [f" w{i}" for i in range(200)]
    for word in words:  # within the interval
        writer.delta(word)
    assert connection.xlen(key) == 2  # held back
    assert writer._last_write is not None
    writer._last_write -= 61  # the interval has passed ...
    writer.delta(" after.")  # ... so everything pending goes out with this piece
    assert connection.xlen(key) == 3
    writer.done({"answer": "..."})
    events = collect(redis_url, "job-batched")
    assert [e.type for e in events] == ["delta", "delta", "done"]
    assert "".join(e.data for e in events[:2]) == "Restart" + "".join(words) + " after."


def test_pending_text_is_written_before_an_error(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    writer = StreamWriter(connection, "job-error", flush_seconds=60)
    writer.start()
    for piece in ("Restart", " the", " worker"):
        writer.delta(piece)
    writer.error("the Flow LLM gateway broke off the answer mid-stream; try again later")
    events = collect(redis_url, "job-error")
    assert [(e.type, e.data) for e in events[:2]] == [
        ("delta", "Restart"),
        ("delta", " the worker"),
    ]
    assert events[2].type == "error"


def test_flush_writes_the_held_text_and_nothing_when_none_is_held(redis_url: str) -> None:
    """The worker flushes when a job ends without done/error (e.g. its timeout)."""
    connection = redis.Redis.from_url(redis_url)
    writer = StreamWriter(connection, "job-flush", flush_seconds=60)
    writer.start()
    for piece in ("Restart", " the", " worker"):
        writer.delta(piece)
    writer.flush()
    writer.flush()
    entries = connection.xrange(stream_key("job-flush"))
    assert [e[1][b"type"] for e in entries] == [b"start", b"delta", b"delta"]
    assert DELTA_FLUSH_SECONDS <= 0.1  # the default: readers cannot tell batches from words


def test_a_retry_that_repeats_the_answer_sends_nothing_twice(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    first = StreamWriter(connection, "job2", flush_seconds=0)
    first.start()
    first.delta("Restart")
    first.delta(" the")  # the worker dies here
    retry = StreamWriter(connection, "job2", flush_seconds=0)
    retry.start()
    for piece in ("Restart", " the", " worker."):
        retry.delta(piece)
    retry.done({"answer": "Restart the worker."})
    events = collect(redis_url, "job2")
    assert [e.type for e in events] == ["delta", "delta", "delta", "done"]
    assert "".join(e.data for e in events if e.type == "delta") == "Restart the worker."


def test_a_retry_that_says_something_else_resets_the_text_once(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    first = StreamWriter(connection, "job3", flush_seconds=0)
    first.start()
    first.delta("Restart the pods")
    retry = StreamWriter(connection, "job3", flush_seconds=0)
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
