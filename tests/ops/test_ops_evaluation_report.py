"""The evaluation's documented figures agree with the code and the committed baseline, and the
baseline gate compares what it should."""

from __future__ import annotations

import re
from pathlib import Path

from app.rag.judge import rubric_version
from app.rag.retrieval import REFUSAL_MIN_SCORE
from ops.evaluation.questions import DEFAULT_QUESTIONS, read_questions
from ops.evaluation.report import drops, figures, read_run

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "evaluation.md").read_text(encoding="utf-8")
BASELINE = read_run(REPO / "tests" / "data" / "eval" / "knowledge_base.baseline.json")


def test_the_documented_threshold_is_the_one_in_the_code() -> None:
    chosen = re.findall(r"\*\*([0-9.]+) \(chosen\)\*\*", DOC)
    assert chosen == [f"{REFUSAL_MIN_SCORE:.2f}"]


def test_the_documented_scores_are_the_baseline() -> None:
    for name, value in figures(BASELINE.summary).items():
        if name.startswith(("latency", "mean tokens", "errors")):
            continue  # machine-dependent or not a score
        assert f"| {name} | {value} |" in DOC, name


def test_the_baseline_covers_the_set_under_the_current_rubric() -> None:
    questions = read_questions(DEFAULT_QUESTIONS)
    assert [r.question for r in BASELINE.results] == [q.question for q in questions]
    assert BASELINE.rubric_version == rubric_version()
    assert BASELINE.summary.errors == 0


def test_a_run_equal_to_its_baseline_has_no_drop() -> None:
    assert drops(BASELINE, BASELINE, 0.0) == []
    worse = BASELINE.model_copy(deep=True)
    worse.summary.unanswerable_refused -= 0.06
    assert drops(worse, BASELINE, 0.05) == [
        f"unanswerable refused fell from {BASELINE.summary.unanswerable_refused:.3f} to "
        f"{worse.summary.unanswerable_refused:.3f} (tolerance 0.05)"
    ]
    assert drops(worse, BASELINE, 0.1) == []


def _unjudged(run):  # what --no-judge gives: no verdict, no judge figures
    copy = run.model_copy(deep=True)
    copy.summary.judged = 0
    copy.summary.groundedness = copy.summary.relevance = None
    return copy


def test_a_run_without_the_judge_is_not_compared_on_the_judges_figures() -> None:
    assert BASELINE.summary.judged and BASELINE.summary.groundedness
    unjudged = _unjudged(BASELINE)
    assert drops(unjudged, BASELINE, 0.05) == []
    assert drops(BASELINE, unjudged, 0.05) == []
    # the other figures are still compared
    worse = _unjudged(BASELINE)
    worse.summary.hit_at_1 -= 0.1
    (only,) = drops(worse, BASELINE, 0.05)
    assert only.startswith("hit@1 fell")
    # and two judged runs still are on the judge's
    lower = BASELINE.model_copy(deep=True)
    lower.summary.relevance = (BASELINE.summary.relevance or 0) - 1
    assert [d.split(" fell")[0] for d in drops(lower, BASELINE, 0.05)] == ["relevance"]
