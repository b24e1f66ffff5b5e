"""app.access.quotas against a real Redis: per-minute requests and daily Flow tokens, per key."""

from __future__ import annotations

import redis

from app.access.quotas import REASON_RATE, REASON_TOKENS, Quotas
from app.core.settings import load_settings


def _quotas(redis_url: str, **limits: int) -> Quotas:
    return Quotas(redis.Redis.from_url(redis_url), load_settings(REDIS_URL=redis_url, **limits))


def test_requests_per_minute_per_key(redis_url: str) -> None:
    quotas = _quotas(redis_url, RATE_LIMIT_PER_MINUTE=2)
    assert quotas.admit("a") is None and quotas.admit("a") is None
    refusal = quotas.admit("a")
    assert refusal is not None and refusal.reason == REASON_RATE
    assert 1 <= refusal.retry_after <= 60
    assert quotas.admit("b") is None  # another key has its own window


def test_tokens_are_charged_and_refuse_the_next_chat(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=1000)
    assert quotas.admit("a") is None
    quotas.charge_tokens("a", 600)
    assert quotas.admit("a") is None  # 400 left
    quotas.charge_tokens("a", 600)  # a chat in flight may overshoot; it is still charged
    assert quotas.tokens_used("a") == 1000
    refusal = quotas.admit("a")
    assert refusal is not None and refusal.reason == REASON_TOKENS
    assert 23 * 3600 < refusal.retry_after <= 24 * 3600
    quotas.charge_tokens("b", 0)  # zero usage is a no-op
    assert quotas.admit("b") is None


def test_api_and_workers_share_a_counter_even_with_different_limits(redis_url: str) -> None:
    """The worker charges with its own settings: the counter must not depend on the limit."""
    worker = _quotas(redis_url, FLOW_TOKENS_PER_DAY=10**9)
    api = _quotas(redis_url, FLOW_TOKENS_PER_DAY=500)
    worker.charge_tokens("a", 600)
    refusal = api.admit("a")
    assert refusal is not None and refusal.reason == REASON_TOKENS
