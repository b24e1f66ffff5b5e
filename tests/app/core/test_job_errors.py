"""app.core.job_errors: the sentence a chat client sees for a failed job."""

from __future__ import annotations

import pytest
import redis
from rq.job import Job
from rq.results import Result

from app.core.job_errors import INTERNAL_FAILURE, chat_failure_reason
from app.core.redis_clients import JOB_SERIALIZER

REASON = "the Flow LLM gateway did not answer; try again later"


@pytest.mark.parametrize(
    ("exception", "seen"),
    [
        ("app.worker.runner.ChatFailed", REASON),  # raised by today's worker
        ("app.worker.ChatFailed", REASON),  # failed before the move (regroup: keep)
        ("builtins.RuntimeError", INTERNAL_FAILURE),  # anything else stays internal
    ],
)
def test_a_user_facing_failure_shows_its_sentence_and_nothing_else(
    redis_url: str, exception: str, seen: str
) -> None:
    connection = redis.Redis.from_url(redis_url)
    job = Job.create("app.worker.answer_chat", connection=connection, serializer=JOB_SERIALIZER)
    job.save()
    trace = f'Traceback (most recent call last):\n  File "x.py", line 1\n{exception}: {REASON}\n'
    Result.create_failure(job, 60, trace)  # what RQ stores when the job raised
    assert chat_failure_reason(job) == seen
