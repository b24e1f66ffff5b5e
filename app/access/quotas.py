"""Per-key limits, counted in Redis: chat requests per minute, Flow tokens per day (as a
reservation) and bytes a key's chats may store per result lifetime.

Built on the ``limits`` library (its Redis storage and fixed-window strategy): the counters are
one Redis key per key_id and window, changed by Lua scripts (atomic across API replicas and
workers), and they expire with their window. ``limits`` is maintained, small and already knows
how to report a window's reset time (our ``Retry-After``). RQ has no per-client rate limiting of
its own (its queues limit concurrency, not callers), so it does not fit.

Fixed windows: a key can send up to twice its per-minute rate across a minute boundary; that is
the price of one Redis round trip per request (a moving window stores every hit).

Flow tokens are a reservation: the API reserves a chat's estimate (its prompt's tokens plus the
``max_tokens`` the worker sends to Flow) before it queues the chat (:meth:`Quotas.reserve`),
refusing it when less than that is left; the worker settles the reservation with Flow's
``usage`` (:meth:`Quotas.settle`). A chat Flow reports no usage for, whose stream breaks or that
times out keeps its estimate charged. ``limits``' own ``hit`` always adds its cost (a refused
hit is charged too), so the reservation is a small script of ours on the counters ``limits``
reads (tokens and stored bytes in one round trip): it adds the costs only when both fit.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from limits import RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from app.core.settings import Settings

KEY_PREFIX = "flowchat:limits"
REASON_RATE = "rate"  # the `reason` label of METRIC_RATE_LIMITED
REASON_TOKENS = "tokens"
REASON_QUEUE = "queue_full"
REASON_BYTES = "stored_bytes"
REASON_OPEN = "open_streams"

# a chat's reservation: each counter KEYS[i] gets its cost ARGV[3i-2] only if every counter stays
# within its limit ARGV[3i-1] (all or nothing, one round trip); a new counter expires in its window
# ARGV[3i] seconds. Returns {0} when added, else {i of the first counter that does not fit, what
# it has used, its TTL}.
_RESERVE = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + tonumber(ARGV[3 * i - 2]) > tonumber(ARGV[3 * i - 1]) then
    return {i, used, redis.call('TTL', key)}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[3 * i - 2])
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[3 * i]) end
end
return {0}
"""
# add ARGV[1] (may be negative) to the counter KEYS[1], never below 0; a reservation of a window
# that has ended is not refunded into the next one, an overshoot is charged to the current one.
# With KEYS[2] (a job's settle marker, kept ARGV[3] seconds): only the job's first settlement
# replaces its reservation; a later one (a retried attempt that called Flow again) adds its
# whole usage ARGV[4].
_SETTLE = """
local delta = tonumber(ARGV[1])
if KEYS[2] and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  delta = tonumber(ARGV[4])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if delta <= 0 then return 0 end
  redis.call('SET', KEYS[1], delta, 'EX', ARGV[2])
  return delta
end
local now = redis.call('INCRBY', KEYS[1], delta)
if now < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') return 0 end
return now
"""


class _CounterPerKey:
    """``limits`` puts the limit's amount in the Redis key; ours leave it out, so the API and
    the workers share one counter per key and window even if their configured limits differ
    (during a rollout), and changing a limit does not reset what was used."""

    namespace: str
    multiples: int
    GRANULARITY: Any

    def key_for(self, *identifiers: str) -> str:
        parts = [self.namespace, *identifiers, str(self.multiples), self.GRANULARITY.name]
        return "/".join(parts)


class _PerMinute(_CounterPerKey, RateLimitItemPerMinute):
    pass


class _PerDay(_CounterPerKey, RateLimitItemPerDay):
    pass


class _PerSeconds(_CounterPerKey, RateLimitItemPerSecond):
    pass


@dataclass(frozen=True)
class Refusal:
    reason: str  # REASON_*: the metric label
    detail: str  # the sentence for the client
    retry_after: int  # seconds


class Quotas:
    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        storage = RedisStorage(
            "redis://", connection_pool=connection.connection_pool, key_prefix=KEY_PREFIX
        )
        self._storage = storage
        self._limiter = FixedWindowRateLimiter(storage)
        self._reserve = connection.register_script(_RESERVE)
        self._settle = connection.register_script(_SETTLE)
        self._redis = connection
        self.requests = _PerMinute(settings.RATE_LIMIT_PER_MINUTE, namespace="rpm")
        self.tokens = _PerDay(settings.FLOW_TOKENS_PER_DAY, namespace="tpd")
        # what a key's chats may write in one result lifetime (results, streams, histories)
        self.stored_bytes = _PerSeconds(
            settings.MAX_STORED_BYTES_PER_KEY,
            multiples=settings.RESULT_TTL_SECONDS,
            namespace="bytes",
        )

    def _key(self, item: Any, key_id: str) -> str:
        return self._storage.prefixed_key(item.key_for(key_id))

    def _retry_after(self, item, key_id: str) -> int:
        reset = self._limiter.get_window_stats(item, key_id).reset_time
        return max(1, math.ceil(reset - time.time()))

    def admit(self, key_id: str) -> Refusal | None:
        """Count one chat request for ``key_id``; a :class:`Refusal` when its rate is reached."""
        if not self._limiter.hit(self.requests, key_id):
            return Refusal(
                REASON_RATE,
                f"this API key sent more than {self.requests.amount} chat requests in a minute; "
                "slow down",
                self._retry_after(self.requests, key_id),
            )
        return None

    def reserve(self, key_id: str, tokens: int, stored_bytes: int) -> Refusal | None:
        """Reserve a chat's Flow-token estimate and the bytes it may store, or refuse it (and
        reserve nothing) when either does not fit in what the key has left (one script: both
        or neither, one round trip)."""
        refused, *state = self._reserve(
            [self._key(self.tokens, key_id), self._key(self.stored_bytes, key_id)],
            [
                tokens,
                self.tokens.amount,
                self.tokens.get_expiry(),
                stored_bytes,
                self.stored_bytes.amount,
                self.stored_bytes.get_expiry(),
            ],
        )
        if refused == 1:
            used, ttl = state
            left = max(0, self.tokens.amount - int(used))
            return Refusal(
                REASON_TOKENS,
                f"this API key has {left} of its daily {self.tokens.amount} Flow tokens left; "
                f"this chat reserves {tokens} (its prompt plus the longest answer); the budget "
                f"renews when the day's window ends",
                max(1, int(ttl)),
            )
        if refused == 2:
            used, ttl = state
            return Refusal(
                REASON_BYTES,
                f"this API key's chats have stored {int(used)} of the "
                f"{self.stored_bytes.amount} bytes allowed while results are kept; this chat "
                f"may store {stored_bytes}; retry when earlier results expire, or ask an "
                f"operator to run `python -m ops.keys reset --stack STACK --key-id {key_id}`",
                max(1, int(ttl)),
            )
        return None

    def release(self, key_id: str, tokens: int, stored_bytes: int) -> None:
        """Give a reservation back (the chat was not queued after all)."""
        self.settle(key_id, tokens, 0)
        self._settle([self._key(self.stored_bytes, key_id)], [-stored_bytes, 1])

    def settle(self, key_id: str, reserved: int, used: int, job_id: str | None = None) -> None:
        """Replace a chat's reserved estimate by the tokens Flow reported it used. With
        ``job_id`` it is idempotent per job: a retried attempt that settles again is charged
        its whole usage, never refunded the reservation a second time (one round trip)."""
        if job_id is not None:
            window = self.tokens.get_expiry()
            marker = f"{KEY_PREFIX}:settled:{job_id}"
            self._settle(
                [self._key(self.tokens, key_id), marker], [used - reserved, window, window, used]
            )
        elif used != reserved:
            self._settle(
                [self._key(self.tokens, key_id)], [used - reserved, self.tokens.get_expiry()]
            )

    def charge_tokens(self, key_id: str, tokens: int) -> None:
        """Add tokens to the key's daily counter (what a chat without reservation used)."""
        if tokens > 0:
            self.settle(key_id, 0, tokens)

    def tokens_used(self, key_id: str) -> int:
        stats = self._limiter.get_window_stats(self.tokens, key_id)
        return self.tokens.amount - stats.remaining

    def usage(self, key_id: str) -> dict[str, dict[str, int]]:
        """Every counter of ``key_id``: what is used, the limit and the seconds to its reset."""
        report = {}
        for name, item in (
            ("requests_per_minute", self.requests),
            ("flow_tokens_per_day", self.tokens),
            ("stored_bytes", self.stored_bytes),
        ):
            key = self._key(item, key_id)
            used = int(self._redis.get(key) or 0)
            ttl = int(self._redis.ttl(key))
            report[name] = {"used": used, "limit": int(item.amount), "resets_in": max(ttl, 0)}
        return report

    def reset(self, key_id: str) -> int:
        """Forget every counter of ``key_id`` (an operator's reset); the number removed."""
        keys = [self._key(item, key_id) for item in (self.requests, self.tokens, self.stored_bytes)]
        return int(self._redis.delete(*keys))


# ZSET KEYS[1] of open slots (member -> expiry time): drop the expired (a replica that died with
# slots open), then add ARGV[3] until ARGV[4] (the limit) are open. ARGV[1]: now, ARGV[2]: the
# new slot's expiry, ARGV[5]: the set's own TTL.
_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[4]) then return {0, open} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, open + 1}
"""
OPEN_KEY = "flowchat:limits:open:{}"  # per key_id


class OpenSlots:
    """Per-key bound on what holds an API connection open (answer streams and ``?wait=``):
    one ZSET per key across every API replica; a slot a dead replica left open expires with the
    longest stream (``hold_seconds``)."""

    def __init__(self, connection: aioredis.Redis, limit: int, hold_seconds: float) -> None:
        self._redis = connection
        self._open = connection.register_script(_OPEN)
        self.limit = limit
        self.hold_seconds = hold_seconds

    async def acquire(self, key_id: str) -> str | Refusal:
        """A slot's token, or a :class:`Refusal` when the key has ``limit`` open already."""
        token = secrets.token_hex(8)
        now = time.time()
        added, open_now = await self._open(
            [OPEN_KEY.format(key_id)],
            [now, now + self.hold_seconds, token, self.limit, math.ceil(self.hold_seconds) + 60],
        )
        if not added:
            return Refusal(
                REASON_OPEN,
                f"this API key has {open_now} answer streams or waits open; the limit is "
                f"{self.limit} (MAX_OPEN_STREAMS_PER_KEY): close one first",
                1,
            )
        return token

    async def release(self, key_id: str, token: str) -> None:
        await self._redis.zrem(OPEN_KEY.format(key_id), token)

    @asynccontextmanager
    async def held(self, key_id: str) -> AsyncIterator[Refusal | None]:
        """``async with slots.held(key) as refusal``: the slot is released when the block ends."""
        token = await self.acquire(key_id)
        if isinstance(token, Refusal):
            yield token
            return
        try:
            yield None
        finally:
            await self.release(key_id, token)
