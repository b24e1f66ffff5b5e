"""Votes in Redis: one per job, with the key that cast it, and a TTL that a vote never extends."""

from __future__ import annotations

import redis

from app.chat import feedback


def _vote(vote: str = "up") -> feedback.FeedbackRecord:
    return feedback.FeedbackRecord(job_id="j1", key_id="k1", vote=vote, question="q", answer="a")


def test_the_feedback_hash_expires_and_votes_do_not_extend_it(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    assert feedback.record(connection, _vote())
    ttl = connection.ttl(feedback.FEEDBACK_KEY)
    assert 0 < ttl <= feedback.FEEDBACK_TTL_SECONDS
    connection.expire(feedback.FEEDBACK_KEY, 100)  # as if 90 days had nearly passed
    assert feedback.record(connection, _vote("down"))  # changed: counted
    assert 0 < connection.ttl(feedback.FEEDBACK_KEY) <= 100  # not refreshed
    assert feedback.all_records(connection)[0].key_id == "k1"
