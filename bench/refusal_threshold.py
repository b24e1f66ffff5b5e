"""Measure the score below which retrieval has found nothing relevant (the refusal threshold).

``python bench/refusal_threshold.py [--questions FILE] [--docs DIR] [--budget 0.05]``

With a YAML retrieval set of ``app.rag.eval`` (answerable questions only), it reports how many
of them the current threshold would refuse: ``python bench/refusal_threshold.py --docs
tests/data/eval/docs --questions tests/data/eval/questions.yaml`` checks it on a held-out corpus.

Ingests DIR (default ``docs/``, the knowledge base ``make run`` ingests) into a scratch
collection with the service's loaders, chunker and embeddings, then for every question of the
evaluation set takes the best chunk score the worker would see (a follow-up is searched alone
and made standalone from its conversation, as ``app.worker`` does). It prints the distribution
of that score for answerable and unanswerable questions, the refusals at each candidate
threshold, and the chosen one: the highest threshold (in steps of 0.01) that wrongly refuses
at most ``--budget`` of the answerable questions. ``app.rag.retrieval.REFUSAL_MIN_SCORE`` is
set from it and docs/evaluation.md records the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.chat.conversations import standalone_question
from app.chat.results import Turn
from app.core.settings import REPO_ROOT, load_settings
from app.rag.eval import ingest_folder
from app.rag.retrieval import REFUSAL_MIN_SCORE
from app.rag.vectorstore import VectorStore
from ops.evaluation.questions import DEFAULT_QUESTIONS, EvalQuestion, read_questions


def retrieval_set(path: Path) -> list[EvalQuestion]:
    """A YAML set of ``app.rag.eval`` (answerable questions only, e.g. the held-out corpus
    tests/data/eval/docs) in the evaluation set's shape."""
    from app.rag.eval import read_questions as read_yaml

    return [
        EvalQuestion(
            question=q.question,
            doc=q.expected_document,
            answer_phrase=q.expected_document,
            history=[{"role": "user", "content": q.previous}] if q.previous else [],
        )
        for q in read_yaml(path)
    ]


def best_scores(docs: Path, questions: list[EvalQuestion], k: int) -> list[float]:
    defaults = load_settings()
    with tempfile.TemporaryDirectory(prefix="flowchat-threshold-") as tmp:
        settings = load_settings(
            VECTOR_STORE_PATH=Path(tmp), CHROMA_URL=None, CHROMA_COLLECTION="threshold"
        )
        store = VectorStore.from_settings(settings)
        ingest_folder(docs, store, defaults.CHUNK_SIZE, defaults.CHUNK_OVERLAP)
        scores = []
        for item in questions:
            turns = [Turn(role=m.role, content=m.content) for m in item.history]
            queries = dict.fromkeys([item.question, standalone_question(item.question, turns)])
            scores.append(max(c.score for q in queries for c in store.query(q, k)))
    return scores


def choose(answerable: list[float], budget: float) -> float:
    """The highest threshold (0.01 steps) refusing at most ``budget`` of the answerable."""
    allowed = int(budget * len(answerable))
    best = 0.0
    for step in range(1, 100):
        threshold = step / 100
        if sum(s < threshold for s in answerable) <= allowed:
            best = threshold
    return best


def describe(name: str, scores: list[float]) -> str:
    q = statistics.quantiles(scores, n=10)
    return (
        f"{name:<12} n={len(scores):<3} min {min(scores):.3f}  p10 {q[0]:.3f}  "
        f"median {statistics.median(scores):.3f}  p90 {q[-1]:.3f}  max {max(scores):.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--k", type=int, default=load_settings().TOP_K)
    parser.add_argument(
        "--budget", type=float, default=0.05, help="answerable questions it may refuse (share)"
    )
    args = parser.parse_args(argv)
    if args.questions.suffix in (".yaml", ".yml"):
        questions = retrieval_set(args.questions)
    else:
        questions = read_questions(args.questions)
    scores = best_scores(args.docs, questions, args.k)
    answerable = [s for s, q in zip(scores, questions, strict=True) if not q.unanswerable]
    unanswerable = [s for s, q in zip(scores, questions, strict=True) if q.unanswerable]
    print(f"best chunk score per question over {args.docs} (top {args.k}):")
    print(describe("answerable", answerable))
    if unanswerable:
        print(describe("unanswerable", unanswerable))
    else:  # an answerable-only set: how many the current threshold would refuse
        wrong = sum(s < REFUSAL_MIN_SCORE for s in answerable)
        print(f"below REFUSAL_MIN_SCORE {REFUSAL_MIN_SCORE}: {wrong}/{len(answerable)}")
        return 0
    print("threshold  answerable refused  unanswerable refused")
    for step in range(20, 46, 2):
        t = step / 100
        wrong = sum(s < t for s in answerable)
        right = sum(s < t for s in unanswerable)
        print(
            f"  {t:.2f}     {wrong:>2}/{len(answerable)} ({wrong / len(answerable):5.1%})"
            f"     {right:>2}/{len(unanswerable)} ({right / len(unanswerable):5.1%})"
        )
    chosen = choose(answerable, args.budget)
    wrong = sum(s < chosen for s in answerable)
    right = sum(s < chosen for s in unanswerable)
    print(
        f"chosen: {chosen:.2f} (highest refusing at most {args.budget:.0%} of the answerable): "
        f"refuses {right}/{len(unanswerable)} unanswerable, {wrong}/{len(answerable)} answerable"
    )
    print(f"app.rag.retrieval.REFUSAL_MIN_SCORE today: {REFUSAL_MIN_SCORE:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
