"""The emulator's mutable state: issued tokens, fault injection (latency, 500s and 429s, the
next N failures) and the call counters, behind one lock so other threads can read it."""

from __future__ import annotations

import contextlib
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from app.flow.emulator.config import CallKind, ConfigUpdate, EmulatorConfig, EmulatorStats


@dataclass(frozen=True)
class _Issued:
    client_id: str
    tenant: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class _Fault:
    status: int
    message: str
    headers: dict[str, str]


class EmulatorState:
    """Config, issued tokens, pending faults and counters; safe to read from other threads."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)
        self._tokens: dict[str, _Issued] = {}
        self._fail_next = 0
        self._fail_status = 500
        self._stats = EmulatorStats()

    def update(self, change: ConfigUpdate) -> EmulatorConfig:
        knobs = change.model_dump(
            exclude_unset=True, exclude={"fail_next", "fail_status", "expire_tokens"}
        )
        with self._lock:
            if knobs:
                merged = {**self.config.model_dump(), **knobs}
                self.config = EmulatorConfig.model_validate(merged)
                if "seed" in knobs:
                    self._rng = random.Random(self.config.seed)
            if change.fail_status is not None:
                self._fail_status = change.fail_status
            if change.fail_next is not None:
                self._fail_next = change.fail_next
            if change.expire_tokens:
                self._tokens.clear()
            return self.config

    def issue_token(self, client_id: str, tenant: str) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            lifetime = self.config.token_lifetime
            self._tokens[token] = _Issued(client_id, tenant, time.monotonic() + lifetime)
            self._stats.tokens_issued += 1
        return token, lifetime

    def lookup(self, token: str) -> _Issued | None:
        with self._lock:
            issued = self._tokens.get(token)
            if issued is not None and issued.expires_at <= time.monotonic():
                del self._tokens[token]
                return None
            return issued

    def issued_tokens(self) -> list[str]:
        """Tokens currently valid (for tests that check nothing leaks)."""
        with self._lock:
            now = time.monotonic()
            return [t for t, i in self._tokens.items() if i.expires_at > now]

    def next_fault(self) -> _Fault | None:
        with self._lock:
            cfg = self.config
            if self._fail_next > 0:
                self._fail_next -= 1
                status = self._fail_status
                headers = {"Retry-After": "1"} if status == 429 else {}
                return _Fault(status, "injected failure (fail_next)", headers)
            if cfg.rate_limit_rate and self._rng.random() < cfg.rate_limit_rate:
                return _Fault(429, "rate limit exceeded (emulated)", {"Retry-After": "1"})
            if cfg.error_rate and self._rng.random() < cfg.error_rate:
                return _Fault(500, "internal error (emulated)", {})
            return None

    def count_call(self, kind: CallKind) -> None:
        with self._lock:
            if kind == "token":
                self._stats.token_calls += 1
            else:
                self._stats.chat_calls += 1

    def record(self, kind: CallKind, status: int) -> None:
        with self._lock:
            by_status = (
                self._stats.token_responses if kind == "token" else self._stats.chat_responses
            )
            by_status[str(status)] = by_status.get(str(status), 0) + 1

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._lock:
            self._stats.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    def stats(self) -> EmulatorStats:
        with self._lock:
            return self._stats.model_copy(deep=True)
