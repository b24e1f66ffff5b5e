"""Retrieval: embed the question, take the top-k chunks of the active collection."""

from __future__ import annotations

from app.observability.tracing import traced
from app.rag.prompt import Source, to_sources
from app.rag.vectorstore import RetrievedChunk, VectorStore

MIN_SCORE = 0.15  # below this a chunk shares (almost) nothing with the question
# the best chunk must score at least this, else nothing relevant was found and the service
# refuses (app.contracts.REFUSAL_ANSWER) without calling Flow. Measured, not guessed:
# `python bench/refusal_threshold.py` scores the evaluation set's answerable and unanswerable
# questions over docs/ and picks it; the figures are in docs/evaluation.md.
REFUSAL_MIN_SCORE = 0.33


@traced("retrieval")
def retrieve(store: VectorStore, question: str, k: int) -> list[Source]:
    chunks = [c for c in store.query(question, k) if c.score >= MIN_SCORE]
    return to_sources(chunks)


@traced("retrieval")
def retrieve_any(store: VectorStore, queries: list[str], k: int) -> list[Source]:
    """The top-k chunks over several phrasings of one question (a follow-up alone and made
    standalone from its conversation): each chunk keeps its best score. A follow-up that names
    its topic finds it on its own; one that does not ("how do I undo that?") finds it through
    the earlier question."""
    best: dict[str, RetrievedChunk] = {}
    for query in dict.fromkeys(queries):
        for chunk in store.query(query, k):
            if chunk.id not in best or chunk.score > best[chunk.id].score:
                best[chunk.id] = chunk
    ranked = sorted(best.values(), key=lambda c: -c.score)[:k]
    return to_sources([c for c in ranked if c.score >= MIN_SCORE])


def answerable(sources: list[Source]) -> bool:
    """Whether retrieval found anything relevant enough to ask Flow about."""
    return bool(sources) and max(s.score for s in sources) >= REFUSAL_MIN_SCORE
