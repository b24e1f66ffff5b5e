"""The evaluation set of the repository's knowledge base checked against the documents
(docs/, what `make run` ingests), so it cannot rot: every expected document exists and holds
its answer phrase; no document holds an unanswerable question's phrase."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ops.evaluation.questions import DEFAULT_QUESTIONS, EvalQuestion, read_questions

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


DOCUMENTS = {p.name: _flat(p.read_text(encoding="utf-8")) for p in DOCS.iterdir() if p.is_file()}
QUESTIONS = read_questions(DEFAULT_QUESTIONS)


def test_the_set_has_every_kind_of_question() -> None:
    kinds = [q.kind for q in QUESTIONS]
    assert len(QUESTIONS) >= 60
    assert kinds.count("unanswerable") >= 15
    assert kinds.count("follow-up") >= 8
    assert kinds.count("paraphrased") >= 8
    assert kinds.count("direct") >= 20
    assert len({(q.question, tuple(q.earlier_questions)) for q in QUESTIONS}) == len(QUESTIONS)


@pytest.mark.parametrize("item", QUESTIONS, ids=lambda q: q.question[:50])
def test_each_question_matches_the_documents(item: EvalQuestion) -> None:
    phrase = _flat(item.answer_phrase)
    if item.unanswerable:
        holding = [name for name, text in DOCUMENTS.items() if phrase in text]
        assert not holding, f"{holding} now answer it: drop `unanswerable` or the question"
    else:
        assert item.doc in DOCUMENTS, f"{item.doc} is not in docs/"
        assert phrase in DOCUMENTS[item.doc], f"{item.doc} no longer says {item.answer_phrase!r}"


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    good = {"question": "q?", "doc": "runbook.md", "answer_phrase": "x"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "doc": None}) + "\n")
    with pytest.raises(SystemExit, match="line 2 is not a question"):
        read_questions(path)
    path.write_text(json.dumps({**good, "unanswerable": True}) + "\n")
    with pytest.raises(SystemExit, match="line 1"):
        read_questions(path)
