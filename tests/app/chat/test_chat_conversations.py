"""Conversation turns in Redis, the bounded history and the standalone question."""

from __future__ import annotations

import redis

from app.chat import conversations as conv
from app.chat.results import Turn


def test_turns_are_kept_with_a_ttl_and_bounded(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    for i in range(conv.STORED_TURNS):  # twice as many messages as are kept
        conv.append(connection, "key-a", "c1", f"question {i}", f"answer {i}")
    turns = conv.load(connection, "key-a", "c1")
    assert len(turns) == conv.STORED_TURNS
    assert turns[-1] == Turn(role="assistant", content=f"answer {conv.STORED_TURNS - 1}")
    ttl = connection.ttl(conv.conversation_key("key-a", "c1"))
    assert 0 < ttl <= conv.CONVERSATION_TTL_SECONDS
    assert conv.load(connection, "key-a", "unknown") == []


def test_a_conversation_id_is_scoped_to_its_key(redis_url: str) -> None:
    """Two keys naming the same conversation id have two conversations."""
    connection = redis.Redis.from_url(redis_url)
    conv.append(connection, "key-b", "team-shared", "b's question", "b's answer")
    assert conv.load(connection, "key-a", "team-shared") == []
    conv.append(connection, "key-a", "team-shared", "a's question", "a's answer")
    assert [t.content for t in conv.load(connection, "key-b", "team-shared")] == [
        "b's question",
        "b's answer",
    ]


def test_the_prompt_history_is_bounded_in_turns_and_characters() -> None:
    long = [Turn(role="user", content="x" * 5000)] * 10
    bounded = conv.bounded(long)
    assert len(bounded) == conv.HISTORY_TURNS
    assert all(len(t.content) == conv.HISTORY_CHARS for t in bounded)


def test_the_standalone_question_carries_the_previous_user_question() -> None:
    history = [
        Turn(role="user", content="How do I rotate the Flow credentials?"),
        Turn(role="assistant", content="Run the workflow."),
    ]
    assert conv.standalone_question("And who approves it?", history) == (
        "How do I rotate the Flow credentials?\nAnd who approves it?"
    )
    assert conv.standalone_question("A first question", []) == "A first question"
