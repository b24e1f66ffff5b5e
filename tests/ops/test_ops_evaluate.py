"""ops.evaluate end to end against the real local service (``live_service``: Redis, RQ
workers, Chroma server, the Flow emulator, docs/ ingested), with a few questions of the
repository's set; and the baseline gate."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.contracts import REFUSAL_ANSWER
from app.local.stack import free_port
from ops import evaluate
from ops.evaluation.questions import DEFAULT_QUESTIONS, read_questions
from ops.evaluation.report import EvalRun

# one of each kind; the unanswerable one scores well below the refusal threshold over docs/
PICKED = {
    "How do I rotate the Flow credentials?",
    "My chats sit in the queue and nobody picks them up, what now?",
    "What is the last step of that procedure?",
    "How do I request a new laptop?",
    "And who owns that topic?",
}


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [
        q.model_dump_json(exclude_defaults=True)
        for q in read_questions(DEFAULT_QUESTIONS)
        if q.question in PICKED
    ]
    assert len(lines) == len(PICKED)
    path = tmp_path_factory.mktemp("eval") / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def report(live_stack, questions_file: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalRun:
    """One evaluation run shared by the module's tests: a module-wide fixture asks for the
    session's ``live_stack`` and settles it itself (``live_service`` is per test)."""
    live_stack.settle()
    out = tmp_path_factory.mktemp("report") / "run.json"
    markdown = out.with_suffix(".md")
    code = evaluate.main(
        [
            "--base-url", live_stack.base_url,
            "--questions", str(questions_file),
            "--json", str(out),
            "--markdown", str(markdown),
        ]
    )  # fmt: skip
    assert code == 0
    assert "Answer evaluation passed" in markdown.read_text()
    return EvalRun.model_validate_json(out.read_text())


def _result(run: EvalRun, question: str):
    return next(r for r in run.results if r.question == question)


def test_an_answerable_question_cites_its_document(report: EvalRun) -> None:
    result = _result(report, "How do I rotate the Flow credentials?")
    assert result.rank == 1 and not result.refused
    assert result.cites_expected and result.cited >= 1
    assert result.supported == result.cited  # the emulator quotes its sources
    assert result.groundedness == 5 and result.relevance is not None
    assert result.total_tokens > 0 and result.seconds > 0


def test_a_follow_up_is_answered_from_its_conversation(report: EvalRun) -> None:
    result = _result(report, "What is the last step of that procedure?")
    assert not result.refused, result.answer
    assert result.cites_expected


def test_unanswerable_questions_are_refused(report: EvalRun) -> None:
    for question in ("How do I request a new laptop?", "And who owns that topic?"):
        result = _result(report, question)
        assert result.refused and result.answer == REFUSAL_ANSWER
        assert result.groundedness is None  # refusals are not sent to the judge


def test_the_summary_holds_every_score(report: EvalRun) -> None:
    s = report.summary
    assert (s.questions, s.answerable, s.unanswerable, s.errors) == (5, 3, 2, 0)
    assert s.unanswerable_refused == 1.0 and s.answerable_refused == 0.0
    assert s.hit_at_k == 1.0 and s.citing_nothing == 0
    # the figures are the per-question results' (over the merged docs/ the paraphrased question
    # ranks its document below 1 and one of its citations is unsupported: see the baseline)
    answerable = [r for r in report.results if r.kind != "unanswerable"]
    assert s.hit_at_1 == round(sum(r.rank == 1 for r in answerable) / len(answerable), 4)
    cited = sum(r.cited for r in report.results)
    assert s.citation_support == round(sum(r.supported for r in report.results) / cited, 4)
    assert s.citation_support > 0.5  # most citations quote their source
    assert s.groundedness is not None and s.judged == 3
    assert report.judge.startswith("the Flow emulator")


def test_a_refusal_never_reaches_flow(live_service) -> None:
    before = live_service.emulator.stats()["chat_calls"]
    response = httpx.post(
        f"{live_service.base_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "How do I request a new laptop?"}]},
        timeout=60,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == REFUSAL_ANSWER
    assert body["sources"] == [] and body["usage"]["total_tokens"] == 0
    assert live_service.emulator.stats()["chat_calls"] == before


def test_a_drop_beyond_the_tolerance_fails_against_the_baseline(
    live_service, report: EvalRun, questions_file: Path, tmp_path: Path, capsys
) -> None:
    same = tmp_path / "same.json"
    same.write_text(report.model_dump_json())
    args = ["--base-url", live_service.base_url, "--questions", str(questions_file)]
    assert evaluate.main([*args, "--baseline", str(same)]) == 0
    assert "No per-question differences from the baseline." in capsys.readouterr().out

    better = json.loads(report.model_dump_json())
    better["summary"]["unanswerable_refused"] = 1.0
    better["summary"]["hit_at_1"] = 1.0
    better["summary"]["mrr"] = 1.0
    better["summary"]["cites_expected"] = 1.0
    better["summary"]["citation_support"] = report.summary.citation_support + 0.2
    for r in better["results"]:
        if r["question"] == "How do I rotate the Flow credentials?":
            r["rank"] = 2
    higher = tmp_path / "higher.json"
    higher.write_text(json.dumps(better))
    assert evaluate.main([*args, "--baseline", str(higher), "--no-judge"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: scores dropped beyond the tolerance: ")
    assert "citation support fell" in err  # among others when this run's hit@1/MRR is below 1
    assert "| rank | 2 | 1 |" in out


def test_a_dead_service_is_an_error(questions_file: Path, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = evaluate.main(["--base-url", url, "--questions", str(questions_file), "--no-judge"])
    assert code == 1
    assert "the service failed 5 question(s)" in capsys.readouterr().err


def test_a_bad_questions_file_is_one_sentence(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    assert evaluate.main(["--base-url", "http://127.0.0.1:1", "--questions", str(bad)]) == 2
    assert "line 1 is not a question" in capsys.readouterr().err
