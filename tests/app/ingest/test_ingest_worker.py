"""app.ingest.worker: the scheduler process the ingestion pool runs writes nothing raw to the
log when it fails (RQ logs the error; multiprocessing used to print the traceback again)."""

from __future__ import annotations

import pytest
import redis

from app.contracts import INGEST_QUEUE_NAME


def _fail() -> None:
    raise RuntimeError("the scheduler lost Redis")


def test_a_scheduler_that_fails_ends_without_a_raw_traceback(
    redis_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from app.ingest.worker import _Scheduler

    scheduler = _Scheduler([INGEST_QUEUE_NAME], connection=redis.Redis.from_url(redis_url))
    scheduler.work = _fail  # type: ignore[method-assign]  # what a Redis restart does to it
    process = scheduler.start()
    process.join(120)  # a polling limit: it fails at once
    assert process.exitcode == 1  # the worker sees it ended and starts another
    assert "Process Scheduler:" not in capfd.readouterr().err  # multiprocessing's raw dump
