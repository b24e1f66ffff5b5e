"""app.access.quotas against a real Redis: per-minute requests, Flow tokens as a reservation settled
with the actual usage, stored bytes and open streams, per key."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from app.access.quotas import (
    REASON_BYTES,
    REASON_OPEN,
    REASON_RATE,
    REASON_TOKENS,
    OpenSlots,
    Quotas,
)
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


def test_a_reservation_that_does_not_fit_is_refused_and_costs_nothing(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=1000)
    assert quotas.reserve("a", 600, 10) is None
    assert quotas.tokens_used("a") == 600
    refusal = quotas.reserve("a", 600, 10)  # 400 left: below the reservation
    assert refusal is not None and refusal.reason == REASON_TOKENS
    assert "400" in refusal.detail and "600" in refusal.detail
    assert 23 * 3600 < refusal.retry_after <= 24 * 3600
    assert quotas.tokens_used("a") == 600  # the refused reservation was not charged
    assert quotas.reserve("a", 400, 10) is None  # exactly what is left still fits
    assert quotas.reserve("b", 600, 10) is None  # another key has its own budget


def test_the_job_settles_the_reservation_with_the_actual_usage(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=1000)
    assert quotas.reserve("a", 700, 10) is None
    quotas.settle("a", 700, 150)  # Flow reported 150: 550 go back
    assert quotas.tokens_used("a") == 150
    assert quotas.reserve("a", 800, 10) is None
    quotas.settle("a", 800, 800)  # no usage reported / broken stream: the estimate stays
    assert quotas.tokens_used("a") == 950
    quotas.settle("a", 0, 10**6)  # an overshoot is charged, never below zero on a refund
    assert quotas.reserve("a", 1, 10) is not None


def test_a_job_settles_once_and_a_retried_attempt_pays_its_whole_usage(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=10_000)
    assert quotas.reserve("a", 700, 10) is None
    quotas.settle("a", 700, 150, job_id="job-1")
    assert quotas.tokens_used("a") == 150
    quotas.settle("a", 700, 200, job_id="job-1")  # the attempt after a killed worker's
    assert quotas.tokens_used("a") == 350  # no second refund of the reservation
    quotas.settle("a", 700, 700, job_id="job-2")  # no usage reported: the estimate stays
    assert quotas.tokens_used("a") == 350


def test_refused_bytes_give_the_tokens_back(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=1000, MAX_STORED_BYTES_PER_KEY=100_000)
    assert quotas.reserve("a", 100, 90_000) is None
    refusal = quotas.reserve("a", 100, 20_000)
    assert refusal is not None and refusal.reason == REASON_BYTES
    # what lifts it at once
    assert "`python -m ops.keys reset --stack STACK --key-id a`" in refusal.detail
    assert quotas.tokens_used("a") == 100  # only the first chat's tokens
    quotas.release("a", 100, 90_000)
    assert quotas.tokens_used("a") == 0
    assert quotas.reserve("a", 100, 20_000) is None


def test_api_and_workers_share_a_counter_even_with_different_limits(redis_url: str) -> None:
    """The worker settles with its own settings: the counter must not depend on the limit."""
    worker = _quotas(redis_url, FLOW_TOKENS_PER_DAY=10**9)
    api = _quotas(redis_url, FLOW_TOKENS_PER_DAY=500)
    worker.charge_tokens("a", 600)
    refusal = api.reserve("a", 1, 1)
    assert refusal is not None and refusal.reason == REASON_TOKENS


def test_usage_and_reset(redis_url: str) -> None:
    quotas = _quotas(redis_url, FLOW_TOKENS_PER_DAY=1000, RATE_LIMIT_PER_MINUTE=5)
    quotas.admit("a")
    quotas.reserve("a", 300, 4096)
    report = quotas.usage("a")
    assert report["flow_tokens_per_day"]["used"] == 300
    assert report["flow_tokens_per_day"]["limit"] == 1000
    assert report["requests_per_minute"]["used"] == 1
    assert report["stored_bytes"]["used"] == 4096
    assert quotas.reset("a") == 3
    assert quotas.usage("a")["flow_tokens_per_day"]["used"] == 0


def test_open_slots_are_bounded_per_key_and_released(redis_url: str) -> None:
    async def scenario() -> None:
        connection = aioredis.Redis.from_url(redis_url)
        slots = OpenSlots(connection, limit=2, hold_seconds=60)
        first, second = await slots.acquire("a"), await slots.acquire("a")
        assert isinstance(first, str) and isinstance(second, str)
        refused = await slots.acquire("a")
        assert not isinstance(refused, str) and refused.reason == REASON_OPEN
        assert isinstance(await slots.acquire("b"), str)  # another key has its own slots
        await slots.release("a", first)
        async with slots.held("a") as refusal:
            assert refusal is None
        # a slot a dead replica left open expires with the longest stream
        stale = OpenSlots(connection, limit=2, hold_seconds=0.01)
        await slots.release("a", second)
        await stale.acquire("c")
        await stale.acquire("c")
        await asyncio.sleep(0.05)
        assert isinstance(await stale.acquire("c"), str)
        await connection.aclose()

    # a loop of its own, never the thread's current one: asyncio.run() would leave the main
    # thread without an event loop, which later Pulumi mock tests need
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
