"""What a chat may cost before it runs: the Flow tokens and the Redis bytes the API reserves for
it at admission (``app.access.quotas``), from what it knows then.

Tokens: the prompt is the system prompt, the bounded history, ``top_k`` sources of at most
``CHUNK_SIZE`` characters and the question; a token is counted as ``CHARS_PER_TOKEN``
characters (a generous rate for English text, so the estimate errs high); the answer is at most
``CHAT_MAX_TOKENS``, which the worker sends to Flow as ``max_tokens``. The worker settles the
reservation with Flow's ``usage``.

Bytes: the job (question and history), then the answer and its sources three times over (the
stored result, the answer stream, the stream's ``done`` event) and the turn the conversation
keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.chat.conversations import HISTORY_CHARS, HISTORY_TURNS
from app.chat.results import Turn
from app.core.settings import Settings
from app.rag.prompt import system_prompt

CHARS_PER_TOKEN = 3  # below the ~4 of English text: the estimate errs high
SOURCE_OVERHEAD_CHARS = 200  # a source's delimiter, label and metadata
CHARS_PER_ANSWER_TOKEN = 4
JOB_OVERHEAD_BYTES = 2048  # RQ's own fields of a job and its result


@dataclass(frozen=True)
class Reservation:
    tokens: int
    stored_bytes: int


def estimate(
    settings: Settings, question: str, history: list[Turn] | None, top_k: int | None
) -> Reservation:
    """``history``: the turns the caller sent (``/v1``, already bounded); None for a chat whose
    conversation is read by the worker (counted as the longest bounded history)."""
    if history is None:
        history_chars = HISTORY_TURNS * HISTORY_CHARS
    else:
        history_chars = sum(len(t.content) for t in history)
    k = top_k or settings.TOP_K
    sources_chars = k * (settings.CHUNK_SIZE + SOURCE_OVERHEAD_CHARS)
    prompt_chars = len(system_prompt()) + history_chars + sources_chars + len(question)
    tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN) + settings.CHAT_MAX_TOKENS
    answer_bytes = settings.CHAT_MAX_TOKENS * CHARS_PER_ANSWER_TOKEN
    job_bytes = 4 * (len(question) + (0 if history is None else history_chars))  # UTF-8 worst
    stored = JOB_OVERHEAD_BYTES + job_bytes + 3 * (answer_bytes + sources_chars)
    stored += 4 * len(question) + answer_bytes  # the conversation's new turn
    return Reservation(tokens=tokens, stored_bytes=stored)
