"""The evaluation set: JSONL, one question per line.

``question``; ``doc`` (the file name of the document that answers it); ``answer_phrase`` (a
phrase of that document that answers it; for an unanswerable question, the phrase an answer
would need, which no document holds); optional ``unanswerable: true``; optional ``history``
(earlier turns as OpenAI-style messages); optional ``paraphrased: true`` (worded to share few
words with the answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_QUESTIONS = REPO_ROOT / "tests" / "data" / "eval" / "knowledge_base.jsonl"

Kind = Literal["direct", "paraphrased", "follow-up", "unanswerable"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class EvalQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    doc: str | None = None
    answer_phrase: str = Field(min_length=1)
    unanswerable: bool = False
    paraphrased: bool = False
    history: list[Message] = Field(default_factory=list)

    @model_validator(mode="after")
    def _doc_when_answerable(self) -> EvalQuestion:
        if not self.unanswerable and not self.doc:
            raise ValueError("an answerable question names its doc")
        if self.unanswerable and self.doc:
            raise ValueError("an unanswerable question names no doc")
        return self

    @property
    def kind(self) -> Kind:
        if self.unanswerable:
            return "unanswerable"
        if self.history:
            return "follow-up"
        return "paraphrased" if self.paraphrased else "direct"

    @property
    def earlier_questions(self) -> list[str]:
        return [m.content for m in self.history if m.role == "user"]


def read_questions(path: Path) -> list[EvalQuestion]:
    """Every line of ``path``; SystemExit with one sentence naming the bad line otherwise."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SystemExit(f"cannot read questions from {path}: {exc.strerror}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            questions.append(EvalQuestion.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise SystemExit(f"{path} line {number} is not a question: {first}") from None
    if not questions:
        raise SystemExit(f"{path} holds no questions")
    return questions
