"""The answer of a chat whose retrieval found nothing relevant: the refusal sentence, produced
without calling Flow (no tokens spent, no invention stitched from unrelated passages)."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.contracts import REFUSAL_ANSWER
from app.flow.models import ChatCompletion, Choice, ResponseMessage


def refusal(on_delta: Callable[[str], None]) -> ChatCompletion:
    """Stream the refusal sentence as one delta and return it as a completion without usage."""
    on_delta(REFUSAL_ANSWER)
    return ChatCompletion(
        id="refusal",
        created=int(time.time()),
        model="none",
        choices=[Choice(message=ResponseMessage(content=REFUSAL_ANSWER), finish_reason="stop")],
    )
