"""Conversation context for the Flow emulator's extractive answers: a follow-up such as
"What is the last step of that procedure?" names little of its topic, so the earlier user
turns of the conversation count too when the emulator picks source sentences.

A sentence scores two points per content word it shares with the question and one per word
it shares with the earlier user questions (words the question has are counted once), so the
question leads and the conversation breaks ties and fills in the topic.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from app.flow.models import ChatMessage

# the escaped earlier turns app.rag.prompt puts inside the last user message's <history> block
_USER_TURN = re.compile(r'<turn role="user">\n(.*?)\n</turn>', re.S)

QUESTION_WEIGHT = 2
CONTEXT_WEIGHT = 1


def earlier_user_turns(messages: Sequence[ChatMessage]) -> list[str]:
    """The earlier user turns: those the service's prompt carries as ``<turn role="user">``
    blocks in its last user message (app.rag.prompt), then any user messages before it."""
    users = [m.content for m in messages if m.role == "user"]
    if not users:
        return []
    quoted = [html.unescape(turn) for turn in _USER_TURN.findall(users[-1])]
    return users[:-1] + quoted


def sentence_score(wanted: set[str], context: set[str], sentence: set[str]) -> int:
    return QUESTION_WEIGHT * len(wanted & sentence) + CONTEXT_WEIGHT * len(
        (context - wanted) & sentence
    )
