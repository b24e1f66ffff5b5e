"""What the benchmarks share: the questions they ask, the limits they lift, how they read a
percentile."""

from __future__ import annotations

# questions about docs/ (which every benchmark's service ingests), so answers come with sources
QUESTIONS = [
    "How do I restart the worker?",
    "How are the Flow credentials rotated?",
    "What should I do when messages are delayed?",
    "How do I rebuild the vector store?",
]

# A benchmark measures the service, not the per-key limits (app.access.quotas;
# bench/closed_service.py measures those): its one anonymous client sends hundreds of chats a
# minute, which the default RATE_LIMIT_PER_MINUTE and FLOW_TOKENS_PER_DAY would refuse with 429.
NO_KEY_LIMITS = {"RATE_LIMIT_PER_MINUTE": "1000000", "FLOW_TOKENS_PER_DAY": "1000000000"}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
