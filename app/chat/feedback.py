"""Votes on answers: one record per chat job (a later vote replaces an earlier one), kept in a
Redis hash so ``python -m ops.feedback export`` can turn down-voted answers into candidate
regression prompts after the job itself has expired."""

from __future__ import annotations

import time
from typing import Literal

import redis
from pydantic import BaseModel, Field

FEEDBACK_KEY = "flowchat:feedback"  # hash: job id -> FeedbackRecord JSON
FEEDBACK_TTL_SECONDS = 90 * 24 * 3600  # set by the first vote, never refreshed: votes expire
COMMENT_MAX_CHARS = 1000

Vote = Literal["up", "down"]


class FeedbackRecord(BaseModel):
    job_id: str
    key_id: str | None = None  # the key that owns the job and cast the vote
    vote: Vote
    comment: str | None = Field(default=None, max_length=COMMENT_MAX_CHARS)
    question: str
    answer: str
    documents: list[str] = []  # the cited documents, in source order
    at: float = Field(default_factory=time.time)


def record(connection: redis.Redis, entry: FeedbackRecord) -> bool:
    """Store the vote; True when it is new or changed (what the vote counter counts)."""
    previous = connection.hget(FEEDBACK_KEY, entry.job_id)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hset(FEEDBACK_KEY, entry.job_id, entry.model_dump_json())
        pipe.expire(FEEDBACK_KEY, FEEDBACK_TTL_SECONDS, nx=True)  # NX: a vote never extends it
        pipe.execute()
    if previous is None:
        return True
    return FeedbackRecord.model_validate_json(previous).vote != entry.vote


def all_records(connection: redis.Redis) -> list[FeedbackRecord]:
    records = [FeedbackRecord.model_validate_json(v) for v in connection.hvals(FEEDBACK_KEY)]
    return sorted(records, key=lambda r: r.at)
