"""Scores of one answer and of a whole run.

Per question: the rank of the expected document among the answer's sources (retrieval), the
citations ``[n]`` and how many of them the cited passage supports (``app.rag.judge.supports``),
whether the answer refused (the refusal sentence), the judge's groundedness and relevance
(answers that did not refuse only), latency and tokens.

Over the run: hit@1, hit@k and MRR of the expected document (answerable questions); citation
support (supported / cited over all answers), answers that cite nothing, answers citing the
expected document; refusals (unanswerable questions refused; answerable ones wrongly
refused); mean groundedness and relevance (1-5); latency p50/p95 and mean tokens.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel

from app.rag.judge import Verdict, citations, is_refusal, sentences, supports
from ops.evaluation.asking import Asked
from ops.evaluation.questions import EvalQuestion, Kind


class QuestionResult(BaseModel):
    question: str
    kind: Kind
    doc: str | None
    answer: str
    error: str | None = None
    rank: int | None = None  # 1-based rank of the first source from the expected document
    sources: int = 0
    refused: bool = False
    cited: int = 0
    supported: int = 0
    cites_expected: bool = False
    groundedness: int | None = None
    relevance: int | None = None
    judge_error: str | None = None
    seconds: float = 0.0
    total_tokens: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}: {self.question}"


def score_answer(item: EvalQuestion, asked: Asked, verdict: Verdict | None) -> QuestionResult:
    documents = [s.document for s in asked.sources]
    passages = {s.n: s.text for s in asked.sources}
    by_n = {s.n: s.document for s in asked.sources}
    cited = supported = 0
    cited_documents: set[str] = set()
    for sentence in sentences(asked.answer):
        for n in citations(sentence):
            cited += 1
            if n in passages:
                cited_documents.add(by_n[n])
                supported += supports(passages[n], sentence)
    rank = documents.index(item.doc) + 1 if item.doc in documents else None
    return QuestionResult(
        question=item.question,
        kind=item.kind,
        doc=item.doc,
        answer=asked.answer,
        error=asked.error,
        rank=rank,
        sources=len(documents),
        refused=asked.error is None and is_refusal(asked.answer),
        cited=cited,
        supported=supported,
        cites_expected=item.doc is not None and item.doc in cited_documents,
        groundedness=verdict.groundedness if verdict else None,
        relevance=verdict.relevance if verdict else None,
        seconds=asked.seconds,
        total_tokens=asked.total_tokens,
    )


class Summary(BaseModel):
    questions: int
    answerable: int
    unanswerable: int
    errors: int
    hit_at_1: float
    hit_at_k: float
    mrr: float
    citation_support: float  # supported citations / citations
    citing_nothing: int  # answers (not refusals) without a single [n]
    cites_expected: float  # answerable, answered: share citing the expected document
    unanswerable_refused: float
    answerable_refused: float
    groundedness: float | None  # mean 1-5 over judged answers
    relevance: float | None
    judged: int
    latency_p50: float
    latency_p95: float
    mean_tokens: float

    def gated(self) -> dict[str, float]:
        """The figures a drop is measured on (all: higher is better, 0-1)."""
        return {
            "hit@1": self.hit_at_1,
            "hit@k": self.hit_at_k,
            "MRR": self.mrr,
            "citation support": self.citation_support,
            "cites expected doc": self.cites_expected,
            "unanswerable refused": self.unanswerable_refused,
            "answerable answered": 1 - self.answerable_refused,
            "groundedness": (self.groundedness or 0) / 5,
            "relevance": (self.relevance or 0) / 5,
        }


def _share(part: float, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _mean(values: list[int]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def summarise(results: list[QuestionResult]) -> Summary:
    ok = [r for r in results if r.error is None]
    answerable = [r for r in ok if r.kind != "unanswerable"]
    unanswerable = [r for r in ok if r.kind == "unanswerable"]
    answered = [r for r in answerable if not r.refused]
    spoke = [r for r in ok if not r.refused]
    cited = sum(r.cited for r in ok)
    seconds = sorted(r.seconds for r in ok) or [0.0]
    grounded = [r.groundedness for r in ok if r.groundedness is not None]
    relevant = [r.relevance for r in ok if r.relevance is not None]
    return Summary(
        questions=len(results),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        errors=len(results) - len(ok),
        hit_at_1=_share(sum(r.rank == 1 for r in answerable), len(answerable)),
        hit_at_k=_share(sum(r.rank is not None for r in answerable), len(answerable)),
        mrr=_share(sum(1 / r.rank for r in answerable if r.rank), len(answerable)),
        citation_support=_share(sum(r.supported for r in ok), cited),
        citing_nothing=sum(r.cited == 0 for r in spoke),
        cites_expected=_share(sum(r.cites_expected for r in answered), len(answered)),
        unanswerable_refused=_share(sum(r.refused for r in unanswerable), len(unanswerable)),
        answerable_refused=_share(sum(r.refused for r in answerable), len(answerable)),
        groundedness=_mean(grounded),
        relevance=_mean(relevant),
        judged=len(grounded),
        latency_p50=round(statistics.median(seconds), 3),
        latency_p95=round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 3),
        mean_tokens=round(statistics.fmean(r.total_tokens for r in ok), 1) if ok else 0.0,
    )
