"""Typed failures of the Flow gateway client.

Every error carries ``reason`` (a sentence for the job's error field and the logs; it never
contains a credential or a token) and ``retryable`` (whether trying the whole job again later may
help: false for bad credentials and malformed requests, true for outages).
"""

from __future__ import annotations


class FlowError(Exception):
    """Base class: something went wrong talking to Flow."""

    retryable: bool = True

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.attempts = attempts
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r})"


class FlowAuthError(FlowError):
    """Flow refused the credentials or the token (401/403). Not retried."""

    retryable = False


class FlowUnavailableError(FlowError):
    """Flow answered 5xx (or could not be reached) on every attempt."""

    retryable = True


class FlowRateLimitedError(FlowError):
    """Flow answered 429 on every attempt."""

    retryable = True


class FlowTimeoutError(FlowError):
    """Flow did not answer within the client's timeout on the last attempt."""

    retryable = True


class FlowBadResponseError(FlowError):
    """Flow's answer was unusable: unparseable, without choices, or a 4xx other than auth."""

    retryable = False


class FlowStreamError(FlowError):
    """Flow broke off a streamed answer after it had started (an error event or a cut
    connection). Not retried: part of the answer was already shown."""

    retryable = False
