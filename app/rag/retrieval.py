"""Retrieval: embed the question, take the top-k chunks of the active collection."""

from __future__ import annotations

from app.rag.prompt import Source, to_sources
from app.rag.vectorstore import VectorStore
from app.tracing import traced

MIN_SCORE = 0.15  # below this a chunk shares (almost) nothing with the question


@traced("retrieval")
def retrieve(store: VectorStore, question: str, k: int) -> list[Source]:
    chunks = [c for c in store.query(question, k) if c.score >= MIN_SCORE]
    return to_sources(chunks)
