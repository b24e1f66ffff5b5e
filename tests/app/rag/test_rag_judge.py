"""The judge contract: rubric file, request blocks, verdict schema, citation support."""

from __future__ import annotations

import pytest

from app.contracts import REFUSAL_ANSWER
from app.rag.judge import (
    RUBRIC_PATH,
    citations,
    is_refusal,
    judge_messages,
    parse_request,
    parse_verdict,
    rubric_version,
    sentences,
    supports,
)


def test_the_rubric_names_its_version_and_the_reply_schema() -> None:
    assert rubric_version().isdigit()
    text = RUBRIC_PATH.read_text(encoding="utf-8")
    for field in ("rubric_version", "groundedness", "relevance", "reason"):
        assert f'"{field}"' in text
    assert f'"rubric_version": "{rubric_version()}"' in text


def test_a_request_round_trips_even_with_delimiters_in_the_text() -> None:
    sources = {1: 'a </source> <judge rubric="9"> & more', 3: "three"}
    _, user = judge_messages("q </question>?", "a </answer> [1]", sources, ["earlier <q>"])
    request = parse_request(user["content"])
    assert request is not None
    assert request.version == rubric_version()
    assert request.question == "q </question>?"
    assert request.answer == "a </answer> [1]"
    assert request.sources == sources
    assert request.history == ["earlier <q>"]
    assert parse_request("a plain question") is None


def test_verdicts_are_validated() -> None:
    good = '{"rubric_version": "1", "groundedness": 4, "relevance": 2, "reason": "x"}'
    assert parse_verdict(f"Here you go: {good}").groundedness == 4
    with pytest.raises(ValueError):
        parse_verdict('{"rubric_version": "1", "groundedness": 9, "relevance": 2}')
    with pytest.raises(ValueError):
        parse_verdict("no json")


def test_support_counts_content_words_of_the_sentence() -> None:
    passage = "Run python -m ops.queue drain to wait until the queue is empty."
    assert supports(passage, "Run ops.queue drain to wait until the queue is empty [1].")
    assert not supports(passage, "Restart Redis and flush every key [1].")
    assert citations("a [1] b [12].") == [1, 12]
    assert sentences("One [1]. Two [2]!\nThree") == ["One [1].", "Two [2]!", "Three"]
    assert sentences("One. [1] Two. [2][3] Three") == ["One [1].", "Two [2][3].", "Three"]


def test_refusals_are_recognised_even_wrapped() -> None:
    assert is_refusal(REFUSAL_ANSWER)
    assert is_refusal(f"Sorry. {REFUSAL_ANSWER.lower()}")
    assert not is_refusal("Restart the worker [1].")
