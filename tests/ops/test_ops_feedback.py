"""``python -m ops.feedback export`` against a real Redis holding votes."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from app.chat.feedback import FeedbackRecord, record
from app.local.stack import free_port
from ops.feedback import main
from ops.smoke import DEFAULT_PROMPTS, load_prompts


def vote(connection: redis.Redis, job: str, value: str, question: str, **kw) -> None:
    entry = FeedbackRecord(
        job_id=job,
        vote=value,
        question=question,
        answer="an answer",
        documents=kw.pop("documents", ["runbook.md"]),
        **kw,
    )
    record(connection, entry)


def test_export_writes_down_voted_questions_in_the_regression_prompts_format(
    redis_url: str, tmp_path: Path, capsys
) -> None:
    connection = redis.Redis.from_url(redis_url)
    existing = load_prompts(DEFAULT_PROMPTS)[0].prompt
    vote(connection, "a", "down", "How do I drain the ingestion queue?", comment="private words")
    vote(connection, "b", "up", "How do I restart the worker?")
    vote(connection, "c", "down", existing)  # already a regression prompt: skipped
    vote(connection, "d", "down", "how do I drain the ingestion queue?  ")  # same question
    vote(connection, "e", "down", "Who owns the vault?", documents=[])
    vote(connection, "f", "down", "An old complaint", at=time.time() - 40 * 86400)
    out = tmp_path / "candidates.yaml"

    assert (
        main(["export", "--redis-url", redis_url, "--output", str(out), "--since-days", "30"]) == 0
    )

    prompts = load_prompts(out)  # exactly the format ops.smoke --prompts reads
    assert [p.prompt for p in prompts] == [
        "How do I drain the ingestion queue?",
        "Who owns the vault?",
    ]
    assert prompts[0].expect_source == "runbook.md" and prompts[0].expect_any == []
    assert prompts[1].expect_source.startswith("unknown")
    text = out.read_text()
    assert "private words" not in text and text.startswith("# Candidate")
    assert "2 candidate prompt(s) from 5 down-vote(s) of 6 vote(s)" in capsys.readouterr().out


def test_a_changed_vote_replaces_the_earlier_one(redis_url: str, capsys) -> None:
    connection = redis.Redis.from_url(redis_url)
    vote(connection, "a", "down", "Why is the answer wrong?")
    vote(connection, "a", "up", "Why is the answer wrong?")
    assert main(["export", "--redis-url", redis_url]) == 0
    captured = capsys.readouterr()
    assert "Why is the answer wrong" not in captured.out
    assert "0 candidate prompt(s) from 0 down-vote(s) of 1 vote(s)" in captured.err


def test_unreachable_redis_exits_1_with_one_sentence(capsys) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    assert main(["export", "--redis-url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read the votes from Redis")
    assert "hunter2" not in err
