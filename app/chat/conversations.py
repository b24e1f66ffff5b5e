"""Conversations: the turns of each conversation in Redis (a list per conversation, with a TTL),
the bounded history a prompt carries, and the question made standalone for retrieval.

Condensing rule (deterministic, no extra Flow call): a follow-up such as "and how do I undo
that?" retrieves poorly on its own, so the worker searches both the follow-up alone and the
previous user question followed by it, keeping each chunk's best score
(:func:`app.rag.retrieval.retrieve_any`). On the follow-up evaluation set
(``tests/data/eval/follow_ups.yaml``) this beats both the follow-up alone and the concatenation
alone; see docs/performance.md.
"""

from __future__ import annotations

import secrets

import redis

from app.chat.results import Turn

# scoped to the key that owns it: two keys naming the same conversation id get two conversations
CONVERSATION_KEY = "flowchat:conversation:{owner}:{conversation_id}"
CONVERSATION_TTL_SECONDS = 24 * 3600  # a conversation idle for a day is forgotten
STORED_TURNS = 20  # kept per conversation (user and assistant messages)
HISTORY_TURNS = 6  # carried in the prompt: the last three exchanges
HISTORY_CHARS = 1500  # each carried message is cut to this many characters


def new_conversation_id() -> str:
    return secrets.token_urlsafe(12)


def conversation_key(owner: str, conversation_id: str) -> str:
    """The Redis key of ``owner``'s (a key id) conversation ``conversation_id``."""
    return CONVERSATION_KEY.format(owner=owner, conversation_id=conversation_id)


def load(connection: redis.Redis, owner: str, conversation_id: str) -> list[Turn]:
    raw = connection.lrange(conversation_key(owner, conversation_id), 0, -1)
    return [Turn.model_validate_json(item) for item in raw]


def append(
    connection: redis.Redis, owner: str, conversation_id: str, question: str, answer: str
) -> None:
    key = conversation_key(owner, conversation_id)
    turns = [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
    with connection.pipeline(transaction=False) as pipe:
        pipe.rpush(key, *(t.model_dump_json() for t in turns))
        pipe.ltrim(key, -STORED_TURNS, -1)
        pipe.expire(key, CONVERSATION_TTL_SECONDS)
        pipe.execute()


def bounded(history: list[Turn]) -> list[Turn]:
    """The last ``HISTORY_TURNS`` messages, each cut to ``HISTORY_CHARS`` characters."""
    return [Turn(role=t.role, content=t.content[:HISTORY_CHARS]) for t in history[-HISTORY_TURNS:]]


def standalone_question(question: str, history: list[Turn]) -> str:
    """The question retrieval searches: the previous user question, then this one."""
    previous = next((t.content for t in reversed(history) if t.role == "user"), None)
    if not previous:
        return question
    return f"{previous[:HISTORY_CHARS]}\n{question}"
