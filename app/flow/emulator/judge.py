"""The Flow emulator's judge: a deterministic grader implementing the answer rubric
(``app/rag/prompts/judge_rubric.md``) for messages built by ``app.rag.judge.judge_messages``,
so ``ops.evaluate`` runs against the emulator exactly as against the real gateway.

How it applies the rubric, without a model:
- groundedness: the share of the answer's sentences that some source supports
  (:func:`app.rag.judge.supports`: the cited sources when the sentence cites any, else any
  source), mapped onto 1-5; a refusal is 5.
- relevance: the share of the question's content words (and, for a follow-up, those of the
  previous user question) that the answer uses, mapped onto 1-5; a refusal is 1.

It implements one rubric version (``IMPLEMENTED_RUBRIC_VERSION``, tested equal to the rubric
file's): a request naming another version gets no verdict but a reply saying so, so a bumped
rubric is never graded by the old logic under the new label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from app.flow.models import ChatMessage
from app.rag.judge import (
    JudgeRequest,
    Verdict,
    citations,
    is_refusal,
    parse_request,
    sentences,
    supports,
    terms,
)

IMPLEMENTED_RUBRIC_VERSION = "1"  # bump with judge_rubric.md, after changing the logic below


class RubricMismatch(ValueError):
    """The request names a rubric version this judge does not implement."""


def _scale(share: float) -> int:
    """0..1 onto the rubric's 1..5."""
    return 1 + round(4 * max(0.0, min(1.0, share)))


def judge(request: JudgeRequest) -> Verdict:
    if request.version != IMPLEMENTED_RUBRIC_VERSION:
        raise RubricMismatch(
            f"the Flow emulator's judge implements rubric version {IMPLEMENTED_RUBRIC_VERSION}, "
            f"the request names version {request.version}: no verdict"
        )
    if is_refusal(request.answer):
        return Verdict(
            rubric_version=IMPLEMENTED_RUBRIC_VERSION,
            groundedness=5,
            relevance=1,
            reason="the answer says it could not find the answer",
        )
    said = sentences(request.answer)
    supported = 0
    for sentence in said:
        cited = [request.sources[n] for n in citations(sentence) if n in request.sources]
        if any(supports(p, sentence) for p in cited or request.sources.values()):
            supported += 1
    asked = terms(request.question)
    if request.history:
        asked |= terms(request.history[-1])
    used = asked & terms(request.answer)
    grounded = supported / len(said) if said else 0.0
    relevant = len(used) / len(asked) if asked else 0.0
    return Verdict(
        rubric_version=IMPLEMENTED_RUBRIC_VERSION,
        groundedness=_scale(grounded),
        relevance=_scale(relevant),
        reason=(
            f"{supported} of {len(said)} sentences supported by the sources; "
            f"{len(used)} of {len(asked)} question words addressed"
        ),
    )


def judge_reply(messages: Sequence[ChatMessage]) -> str | None:
    """The verdict as JSON when the last user message is a judge request, else None; a request
    of another rubric version gets a sentence saying so (no JSON, so no verdict is parsed)."""
    users = [m for m in messages if m.role == "user"]
    request = parse_request(users[-1].content) if users else None
    if request is None:
        return None
    try:
        return json.dumps(judge(request).model_dump())
    except RubricMismatch as exc:
        return str(exc)
