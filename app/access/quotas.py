"""Per-key limits, counted in Redis: chat requests per minute and Flow tokens per day.

Built on the ``limits`` library (its Redis storage and fixed-window strategy): the counters are
one Redis key per key_id and window, incremented by a Lua script (atomic across API replicas and
workers), and they expire with their window. ``limits`` is maintained, small and already knows
how to report a window's reset time (our ``Retry-After``). RQ has no per-client rate limiting of
its own (its queues limit concurrency, not callers), so it does not fit.

Fixed windows: a key can send up to twice its per-minute rate across a minute boundary; that is
the price of one Redis round trip per request (a moving window stores every hit).

The API checks both limits before it queues a chat (:meth:`Quotas.admit`); the worker charges a
finished chat's Flow ``usage.total_tokens`` to its key (:meth:`Quotas.charge_tokens`), so the
daily budget refuses the next chat once it is spent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from app.core.settings import Settings

KEY_PREFIX = "flowchat:limits"
REASON_RATE = "rate"  # the `reason` label of METRIC_RATE_LIMITED
REASON_TOKENS = "tokens"
REASON_QUEUE = "queue_full"


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
        self._limiter = FixedWindowRateLimiter(storage)
        self.requests = _PerMinute(settings.RATE_LIMIT_PER_MINUTE, namespace="rpm")
        self.tokens = _PerDay(settings.FLOW_TOKENS_PER_DAY, namespace="tpd")

    def _retry_after(self, item, key_id: str) -> int:
        reset = self._limiter.get_window_stats(item, key_id).reset_time
        return max(1, math.ceil(reset - time.time()))

    def admit(self, key_id: str) -> Refusal | None:
        """Count one chat request for ``key_id``; a :class:`Refusal` when a limit is reached."""
        if not self._limiter.test(self.tokens, key_id):
            return Refusal(
                REASON_TOKENS,
                f"this API key has used its daily budget of {self.tokens.amount} Flow tokens; "
                "it renews when the day's window ends",
                self._retry_after(self.tokens, key_id),
            )
        if not self._limiter.hit(self.requests, key_id):
            return Refusal(
                REASON_RATE,
                f"this API key sent more than {self.requests.amount} chat requests in a minute; "
                "slow down",
                self._retry_after(self.requests, key_id),
            )
        return None

    def charge_tokens(self, key_id: str, tokens: int) -> None:
        """Add a finished chat's Flow tokens to the key's daily counter."""
        if tokens > 0:
            self._limiter.hit(self.tokens, key_id, cost=tokens)

    def tokens_used(self, key_id: str) -> int:
        stats = self._limiter.get_window_stats(self.tokens, key_id)
        return self.tokens.amount - stats.remaining
