"""Conversation context for the Flow emulator's extractive answers: a follow-up such as
"What is the last step of that procedure?" names little of its topic, so the earlier user
turns of the conversation count too when the emulator picks source sentences.

A sentence scores two points per content word it shares with the question and one per word
it shares with the earlier user questions (words the question has are counted once), so the
question leads and the conversation breaks ties and fills in the topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.flow.models import ChatMessage

QUESTION_WEIGHT = 2
CONTEXT_WEIGHT = 1


def earlier_user_turns(messages: Sequence[ChatMessage]) -> list[str]:
    """The user messages before the last one (the history the prompt carries)."""
    users = [m.content for m in messages if m.role == "user"]
    return users[:-1]


def sentence_score(wanted: set[str], context: set[str], sentence: set[str]) -> int:
    return QUESTION_WEIGHT * len(wanted & sentence) + CONTEXT_WEIGHT * len(
        (context - wanted) & sentence
    )
