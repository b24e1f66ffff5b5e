"""A chat answer as it is written: one Redis Stream per job.

The worker appends events as they happen (``start`` for each attempt, ``sources`` after
retrieval, one ``delta`` per piece of text Flow streams, then ``done`` with the stored result or
``error`` with a reason); the API reads the stream from its first entry, so a client that
connects late still gets the whole answer. The stream is bounded (``MAXLEN``) and expires with a
TTL; the stored job result never depends on it.

A retried job (its worker was killed mid-answer) starts a new attempt in the same stream.
:func:`follow` turns the raw entries into one coherent answer: text the client already has is not
sent twice, and if the new attempt's text differs from what was sent it emits one ``reset`` event
with the new attempt's text so far.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

STREAM_KEY = "flowchat:chat-stream:{}"
STREAM_MAXLEN = 10_000  # entries; an answer streams at most one entry per Flow chunk
# text arriving within this long of the last write is joined into one entry (StreamWriter)
DELTA_FLUSH_SECONDS = 0.05
STREAM_TTL_SECONDS = 3600
READ_BLOCK_MS = 1000

EventType = Literal["sources", "delta", "reset", "done", "error"]


def stream_key(job_id: str) -> str:
    return STREAM_KEY.format(job_id)


class StreamWriter:
    """Worker side: appends the events of one attempt at answering a job.

    The first piece of text is written at once (time to first token); later pieces that arrive
    within ``flush_seconds`` of the last write are held and joined into one ``delta`` entry,
    written with the first piece that arrives after that interval, with ``done``/``error``, or
    by :meth:`flush` (the worker calls it when the job ends any other way). Held text waits for
    the next piece: if Flow pauses mid-answer, the reader sees the pause up to one interval
    early. Flow streams about one word per chunk: one Redis round trip per word was most of a
    job's Redis traffic, while a reader cannot tell 50 ms batches from single words."""

    def __init__(
        self, connection: redis.Redis, job_id: str, *, flush_seconds: float = DELTA_FLUSH_SECONDS
    ) -> None:
        self.redis = connection
        self.key = stream_key(job_id)
        self.attempt = uuid.uuid4().hex[:12]
        self.flush_seconds = flush_seconds
        self._pending: list[str] = []
        self._last_write: float | None = None  # of a delta, time.monotonic()
        self._opening: list[tuple[str, Any]] = []  # ``start``, written with the first event

    def _add(self, *events: tuple[str, Any]) -> None:
        events, self._opening = (*self._opening, *events), []
        with self.redis.pipeline(transaction=False) as pipe:
            for kind, data in events:
                pipe.xadd(
                    self.key,
                    {"type": kind, "attempt": self.attempt, "data": json.dumps(data)},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.expire(self.key, STREAM_TTL_SECONDS)
            pipe.execute()

    def _pending_delta(self) -> list[tuple[str, Any]]:
        if not self._pending:
            return []
        text, self._pending = "".join(self._pending), []
        return [("delta", text)]

    def start(self) -> None:
        """A new attempt: its ``start`` entry goes out with the attempt's first event (the
        sources, or an error), one round trip fewer; a reader tells nothing from a ``start``
        alone, and an attempt that dies before its first event leaves no entry."""
        self._opening = [("start", {"at": time.time()})]

    def sources(self, sources: list[dict[str, Any]]) -> None:
        self._add(("sources", sources))

    def delta(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        now = time.monotonic()
        if self._last_write is None or now - self._last_write >= self.flush_seconds:
            self._last_write = now
            self._add(*self._pending_delta())

    def flush(self) -> None:
        """Write the text held back so far, if any."""
        if self._pending:
            self._add(*self._pending_delta())

    def done(self, result: dict[str, Any]) -> None:
        self._add(*self._pending_delta(), ("done", result))

    def error(self, reason: str) -> None:
        self._add(*self._pending_delta(), ("error", {"reason": reason}))


@dataclass
class StreamEvent:
    """What a client receives: ``data`` is a list (sources), a str (delta, reset) or a dict."""

    type: EventType
    data: Any


@dataclass
class _Coherent:
    """Merges the attempts of a job into one answer for the client."""

    sent: str = ""
    attempt: str | None = None
    attempt_text: str = ""
    diverged: bool = False
    events: list[StreamEvent] = field(default_factory=list)

    def feed(self, kind: str, attempt: str, data: Any) -> list[StreamEvent]:
        if kind == "start" or attempt != self.attempt:
            if attempt != self.attempt:
                self.attempt, self.attempt_text, self.diverged = attempt, "", False
            if kind == "start":
                return []
        if kind == "delta":
            self.attempt_text += data
            if self.diverged:
                self.sent = self.attempt_text
                return [StreamEvent("delta", data)]
            if self.attempt_text.startswith(self.sent):
                new = self.attempt_text[len(self.sent) :]
                self.sent = self.attempt_text
                return [StreamEvent("delta", new)] if new else []
            if self.sent.startswith(self.attempt_text):
                return []  # the retry is repeating what the client already has
            self.diverged = True
            self.sent = self.attempt_text
            return [StreamEvent("reset", self.attempt_text)]
        if kind == "sources":
            return [StreamEvent("sources", data)]
        if kind in ("done", "error"):
            return [StreamEvent(kind, data)]  # type: ignore[arg-type]
        return []


JobOutcome = Callable[[], Awaitable[tuple[str, Any] | None]]


async def follow(
    connection: aioredis.Redis, job_id: str, outcome: JobOutcome, deadline_seconds: float
) -> AsyncIterator[StreamEvent]:
    """Every event of the job's answer from the start, until ``done`` or ``error``.

    ``outcome`` reports a job that ended without a final stream event (it expired, or failed
    before its worker could write one: e.g. abandoned with no retries left) as
    ``("done", result)`` or ``("error", {"reason": ...})``; it is polled whenever the stream is
    quiet for a second.
    """
    key = stream_key(job_id)
    merger = _Coherent()
    last_id = "0-0"
    deadline = time.monotonic() + deadline_seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            yield StreamEvent(
                "error", {"reason": f"no answer within {deadline_seconds:g} s; try again later"}
            )
            return
        block = int(min(READ_BLOCK_MS, max(remaining * 1000, 1)))
        reply = await connection.xread({key: last_id}, count=500, block=block)
        if not reply:
            ended = await outcome()
            if ended is None:
                continue
            # read once more: the final events may have landed between the read and the check
            reply = await connection.xread({key: last_id}, count=500)
            if not reply:
                kind, data = ended
                if kind == "done":  # replay the stored answer as one more attempt
                    for event in merger.feed("delta", "stored", str(data.get("answer", ""))):
                        yield event
                    yield StreamEvent("sources", data.get("sources", []))
                yield StreamEvent(kind, data)  # type: ignore[arg-type]
                return
        for _key, entries in reply:
            for entry_id, fields in entries:
                last_id = entry_id
                kind = _text(fields.get(b"type"))
                attempt = _text(fields.get(b"attempt"))
                data = json.loads(fields.get(b"data") or b"null")
                for event in merger.feed(kind, attempt, data):
                    yield event
                    if event.type in ("done", "error"):
                        return


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return value or ""
