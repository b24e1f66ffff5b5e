"""The retrieval evaluation command on the shipped evaluation set, and its failure path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.rag.eval import main, read_questions

EVAL = Path(__file__).resolve().parents[2] / "data" / "eval"
# Floors set from measurement (hit@1 0.818, hit@5 0.939, MRR 0.871 with CHUNK_SIZE 800 /
# CHUNK_OVERLAP 120 and "title > heading" context lines); deterministic embeddings, some slack.
MIN_HIT_AT_1 = 0.75
MIN_HIT_AT_5 = 0.90
MIN_MRR = 0.80


def test_shipped_question_set_is_well_formed() -> None:
    questions = read_questions(EVAL / "questions.yaml")
    documents = {p.name for p in (EVAL / "docs").iterdir()}
    assert len(questions) >= 30
    assert {q.expected_document for q in questions} <= documents
    assert sum(q.paraphrased for q in questions) >= len(questions) // 3
    assert 8 <= len(documents) <= 15
    assert {Path(d).suffix for d in documents} >= {".md", ".txt", ".html"}


def test_eval_command_meets_the_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    argv = ["--docs", str(EVAL / "docs"), "--questions", str(EVAL / "questions.yaml")]
    code = main([*argv, "--k", "5", "--json", str(out), "--min-hit-at-k", str(MIN_HIT_AT_5)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(out.read_text())
    assert report["documents"] == len(list((EVAL / "docs").iterdir()))
    assert report["hit_at_1"] >= MIN_HIT_AT_1, printed
    assert report["hit_at_k"] >= MIN_HIT_AT_5, printed
    assert report["mrr"] >= MIN_MRR, printed
    assert f"hit@5: {report['hit_at_k']:.3f}" in printed


def test_misses_are_listed_and_fail_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "redis.md").write_text("# Redis\n\nAppend-only file persistence, fsync every second.")
    (docs / "chroma.txt").write_text("Chroma needs two gigabytes of disk per million chunks.")
    questions = tmp_path / "q.yaml"
    questions.write_text(
        yaml.safe_dump(
            [
                {"question": "How is Redis persisted?", "expected_document": "redis.md"},
                {"question": "Disk per million chunks?", "expected_document": "missing.md"},
            ]
        )
    )
    argv = ["--docs", str(docs), "--questions", str(questions), "--k", "1"]
    code = main([*argv, "--min-hit-at-k", "0.9"])
    captured = capsys.readouterr()
    assert code == 1
    assert "hit@1: 0.500" in captured.out
    assert "misses (1):" in captured.out and "expected missing.md; got chroma.txt" in captured.out
    assert "below the floor" in captured.err


RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"


@pytest.mark.skipif(not RUNBOOK.exists(), reason="docs/runbook.md not written yet")
def test_regression_prompts_retrieve_the_runbook() -> None:
    """Each smoke-test prompt finds docs/runbook.md among the top 5 chunks when docs/ is
    ingested (what the service does on first start)."""
    from app.rag.eval import Question, evaluate

    prompts = yaml.safe_load((RUNBOOK.parent / "smoke-prompts.yaml").read_text())
    assert 5 <= len(prompts) <= 8
    assert all(p["expect_source"] == "runbook.md" and p["expect_any"] for p in prompts)
    report = evaluate(
        RUNBOOK.parent,
        [Question(question=p["prompt"], expected_document="runbook.md") for p in prompts],
        k=5,
    )
    assert not report.misses, [o.question for o in report.misses]
