"""The answer judge's contract: one versioned rubric file (``prompts/judge_rubric.md``), the
message that asks a judge to apply it, and the verdict it must reply with.

``ops.evaluate`` sends :func:`judge_messages` to Flow (the real model judges); the Flow
emulator recognises the same message and answers with a deterministic judge implementing the
same rubric (``app.flow.emulator.judge``). Both reply with a :class:`Verdict`. The rubric's
version travels in the message (``<judge rubric="N">``) and in the verdict, so scores from two
rubric versions are never compared.

The request format (escaped text inside delimited blocks, as in ``app.rag.prompt``)::

    <judge rubric="1">
    <history>
    earlier user question
    </history>
    <question>
    the question
    </question>
    <answer>
    the answer [1]
    </answer>
    <sources>
    <source n="1">
    passage
    </source>
    </sources>
    </judge>
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from app.contracts import REFUSAL_ANSWER

RUBRIC_PATH = Path(__file__).parent / "prompts" / "judge_rubric.md"
_VERSION = re.compile(r"rubric, version (\d+)")
_JUDGE = re.compile(r'<judge rubric="(\d+)">\n(.*)\n</judge>', re.S)
_BLOCK = r"<{0}>\n(.*?)\n</{0}>"
_SOURCE = re.compile(r'<source n="(\d+)">\n(.*?)\n</source>', re.S)
_CITATION = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS_TEXT = """
a an the is are was were be been being to of in on for and or but how what when where why
    who whom which do does did doing i you he she we they it its this that these those with as at
    by from can could should would will shall may might must my your our their me us them if then
    there here so than too very just about into onto over under up down out any all some such
    have has had having get gets got please tell explain give show want need know
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
SUPPORT_SHARE = 0.6  # a passage supports a sentence holding this share of its content words


@cache
def rubric() -> str:
    return RUBRIC_PATH.read_text(encoding="utf-8").strip()


def rubric_version() -> str:
    found = _VERSION.search(rubric().splitlines()[0])
    if found is None:
        raise RuntimeError(f"{RUBRIC_PATH} does not name its version on its first line")
    return found.group(1)


class Verdict(BaseModel):
    """What a judge replies (the rubric's last lines)."""

    rubric_version: str
    groundedness: int = Field(ge=1, le=5)
    relevance: int = Field(ge=1, le=5)
    reason: str = ""


@dataclass(frozen=True)
class JudgeRequest:
    version: str
    history: list[str]
    question: str
    answer: str
    sources: dict[int, str]


def terms(text: str) -> set[str]:
    """Content words of ``text`` (lower case, stopwords out, plural ``s`` dropped)."""
    found = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        found.add(word)
    return found


def is_refusal(answer: str) -> bool:
    """Whether an answer is the refusal sentence (a model may wrap it in a few words)."""
    return REFUSAL_ANSWER.lower().rstrip(".") in " ".join(answer.lower().split())


_TRAILING_CITATIONS = re.compile(r"([.!?])((?:\s*\[\d+\])+)")


def sentences(answer: str) -> list[str]:
    """The answer's sentences, each with its citations: "Do X. [1] Do Y [2]." cites [1] for
    "Do X" (markers after a sentence's full stop belong to that sentence)."""
    answer = _TRAILING_CITATIONS.sub(r"\2\1", answer)
    return [s.strip() for s in _SENTENCE_END.split(answer) if _WORD.search(s.lower())]


def citations(sentence: str) -> list[int]:
    return [int(n) for n in _CITATION.findall(sentence)]


def supports(passage: str, sentence: str) -> bool:
    """Whether ``passage`` holds at least SUPPORT_SHARE of the sentence's content words (its
    citation markers left out)."""
    wanted = terms(_CITATION.sub(" ", sentence))
    if not wanted:
        return True
    return len(wanted & terms(passage)) >= SUPPORT_SHARE * len(wanted)


def _escape(text: str) -> str:
    return html.escape(text.strip(), quote=True)


def judge_messages(
    question: str, answer: str, sources: dict[int, str], history: list[str] | None = None
) -> list[dict[str, str]]:
    """The rubric as system message and the graded answer in delimited blocks."""
    blocks = "\n".join(
        f'<source n="{n}">\n{_escape(text)}\n</source>' for n, text in sorted(sources.items())
    )
    earlier = "\n".join(_escape(h) for h in history or [])
    body = (
        f'<judge rubric="{rubric_version()}">\n<history>\n{earlier}\n</history>\n'
        f"<question>\n{_escape(question)}\n</question>\n<answer>\n{_escape(answer)}\n</answer>\n"
        f"<sources>\n{blocks}\n</sources>\n</judge>"
    )
    return [{"role": "system", "content": rubric()}, {"role": "user", "content": body}]


def parse_request(text: str) -> JudgeRequest | None:
    """The blocks of a judge message, or None when ``text`` is not one."""
    found = _JUDGE.search(text)
    if found is None:
        return None
    body = found.group(2)

    def block(name: str) -> str:
        match = re.search(_BLOCK.format(name), body, re.S)
        return html.unescape(match.group(1)).strip() if match else ""

    return JudgeRequest(
        version=found.group(1),
        history=[h for h in block("history").splitlines() if h.strip()],
        question=block("question"),
        answer=block("answer"),
        sources={int(n): html.unescape(t) for n, t in _SOURCE.findall(body)},
    )


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's reply (the first JSON object in it); ValueError otherwise."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError(f"the judge's reply holds no JSON object: {text[:200]!r}")
    try:
        return Verdict.model_validate(json.loads(text[start : end + 1]))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"the judge's reply is not a verdict: {exc}") from None
