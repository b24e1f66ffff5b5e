"""What the benchmarks share: the questions they ask and how they read a percentile."""

from __future__ import annotations

# questions about docs/ (which every benchmark's service ingests), so answers come with sources
QUESTIONS = [
    "How do I restart the worker?",
    "How are the Flow credentials rotated?",
    "What should I do when messages are delayed?",
    "How do I rebuild the vector store?",
]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
