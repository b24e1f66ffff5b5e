"""The extractive answerer: it reads the numbered sources and the question in the prompt the
service builds (:mod:`app.rag.prompt`) and answers with the source sentences that share the most
words with the question, citing them (``[n]``), or with :data:`NOT_FOUND_ANSWER`."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.contracts import REFUSAL_ANSWER
from app.flow.emulator.context import earlier_user_turns, sentence_score
from app.flow.emulator.judge import judge_reply
from app.flow.models import ChatMessage

NOT_FOUND_ANSWER = REFUSAL_ANSWER
MAX_ANSWER_SENTENCES = 3


_SOURCE_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+>]|#{1,6}|\d+[.)])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS_TEXT = """
a an the is are was were be been being to of in on for and or but how what when where why who whom
which do does did doing i you he she we they it its this that these those with as at by from can
could should would will shall may might must my your our their me us them if then there here so than
too very just about into onto over under up down out any all some such have has had having get gets
got please tell explain give show want need know
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True)
class Source:
    n: int
    title: str
    text: str


@dataclass(frozen=True)
class _Candidate:
    score: int
    title_score: int
    n: int
    position: int
    text: str


def _terms(text: str) -> set[str]:
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        terms.add(word)
    return terms


_SOURCE_BLOCK = re.compile(r'<source n="(\d+)" label="([^"]*)">\n(.*?)\n</source>', re.S)
_QUESTION_BLOCK = re.compile(r"<question>\n(.*?)\n</question>", re.S)


def parse_prompt(text: str) -> tuple[list[Source], str | None]:
    """Split a prompt into its numbered sources and the question (None when it has none).
    Reads the delimited format of ``app.rag.prompt`` (escaped text inside ``<source>`` and
    ``<question>`` blocks), or the plain ``[n] label`` / ``Question:`` form of older prompts."""
    asked = _QUESTION_BLOCK.search(text)
    if asked is not None:
        blocks = _SOURCE_BLOCK.findall(text[: asked.start()])
        sources = [
            Source(int(n), html.unescape(label), html.unescape(body).strip())
            for n, label, body in blocks
        ]
        return sources, html.unescape(asked.group(1)).strip()
    body, marker, question = text.rpartition("Question:")
    if not marker:
        body, question_or_none = text, None
    else:
        question_or_none = question.strip()
    sources: list[Source] = []
    current: tuple[int, str] | None = None
    lines: list[str] = []
    for line in body.splitlines():
        match = _SOURCE_LINE.match(line.strip())
        if match:
            if current is not None:
                sources.append(Source(current[0], current[1], "\n".join(lines).strip()))
            current, lines = (int(match.group(1)), match.group(2).strip()), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sources.append(Source(current[0], current[1], "\n".join(lines).strip()))
    return sources, question_or_none


def _sentences(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if _WORD.search(sentence.lower()):
                yield sentence


def answer_prompt(text: str, earlier: Sequence[str] = ()) -> str:
    """Extractive answer: the 1-3 source sentences sharing most words with the question (and
    the ``earlier`` user turns of its conversation, :mod:`app.flow.emulator.context`), each
    followed by its citation ``[n]``. Deterministic for the same input."""
    sources, question = parse_prompt(text)
    if question is None and not sources and "Sources:" not in text:
        snippet = " ".join(text.split())[:200]
        if not snippet:
            return "This is the Flow emulator; your message was empty."
        return f'This is the Flow emulator. You wrote: "{snippet}"'
    wanted = _terms(question if question is not None else text)
    context = _terms(" ".join(earlier))
    if not (wanted or context) or not sources:
        return NOT_FOUND_ANSWER
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for source in sources:
        title_score = len(wanted & _terms(source.title))
        for position, sentence in enumerate(_sentences(source.text)):
            score = sentence_score(wanted, context, _terms(sentence))
            if score and sentence not in seen:
                seen.add(sentence)
                candidates.append(_Candidate(score, title_score, source.n, position, sentence))
    if not candidates:
        return NOT_FOUND_ANSWER
    candidates.sort(key=lambda c: (-c.score, -c.title_score, c.n, c.position))
    best = candidates[0].score
    chosen = [c for c in candidates[:MAX_ANSWER_SENTENCES] if 2 * c.score >= best]
    return " ".join(f"{c.text} [{c.n}]" for c in chosen)


def answer_messages(messages: Sequence[ChatMessage]) -> str:
    """Answer the last user message (or the last message when no user spoke)."""
    judged = judge_reply(messages)  # ops.evaluate's judge requests (app.rag.judge)
    if judged is not None:
        return judged
    users = [m for m in messages if m.role == "user"]
    return answer_prompt((users or list(messages))[-1].content, earlier_user_turns(messages))
