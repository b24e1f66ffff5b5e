"""Prometheus metrics shared by every process.

Worker processes record their observations in Redis hashes (``HINCRBY``, so any number of
workers aggregate naturally; a job's observations go out in one pipeline, see
:meth:`MetricsRecorder.batch`); the API's ``/metrics`` reads them at
scrape time through :class:`FlowchatCollector`, together with the queue gauges that rq-exporter
would give (``rq_jobs{queue,status}``, ``rq_workers{queue}``) and the vector store size.
Names come from :mod:`app.contracts`.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from app.contracts import (
    INGEST_QUEUE_NAME,
    METRIC_CHAT_ANSWERS,
    METRIC_CHAT_FIRST_TOKEN,
    METRIC_CHAT_LATENCY,
    METRIC_EMPTY_ANSWERS,
    METRIC_FEEDBACK,
    METRIC_FLOW_REQUEST_SECONDS,
    METRIC_FLOW_REQUESTS,
    METRIC_FLOW_TOKENS,
    METRIC_RATE_LIMITED,
    METRIC_REDIS_MEMORY_MAX_BYTES,
    METRIC_REDIS_MEMORY_USED_BYTES,
    METRIC_RQ_JOBS,
    METRIC_RQ_WORKERS,
    METRIC_VECTOR_STORE_BYTES,
)

CHAT_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
FEEDBACK_VOTES = ("up", "down")
FLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
KEY_PREFIX = "flowchat:metrics"
RQ_STATUSES = ("queued", "started", "finished", "failed", "deferred", "scheduled")
# the `reason` label values of METRIC_RATE_LIMITED (app.access.quotas refuses with these)
RATE_LIMIT_REASONS = ("rate", "tokens", "queue_full", "stored_bytes", "open_streams")
log = logging.getLogger("flowchat.metrics")
_batches = threading.local()  # the pipeline of this thread's open MetricsRecorder.batch()


def _hist_key(name: str) -> str:
    return f"{KEY_PREFIX}:{name}"


class MetricsRecorder:
    """Write side, used by workers (and by the API for what it observes itself)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every observation this thread records inside the block, through any recorder of the
        process, goes to Redis in one round trip when the block ends (a worker loop wraps each
        job in it). Metrics are best effort: a Redis error at the end is logged, never raised
        into the job's bookkeeping."""
        if getattr(_batches, "pipe", None) is not None:  # nested: the outer block sends
            yield
            return
        pipe = self.redis.pipeline(transaction=False)
        _batches.pipe = pipe
        try:
            yield
        finally:
            _batches.pipe = None
            try:
                if len(pipe):
                    pipe.execute()
            except redis.RedisError as exc:
                log.warning("could not write the job's metrics: %s", exc.__class__.__name__)
            finally:
                pipe.reset()

    @contextmanager
    def _writes(self) -> Iterator[Any]:
        """The current batch, or a pipeline sent at the end of the block."""
        batched = getattr(_batches, "pipe", None)
        if batched is not None:
            yield batched
            return
        with self.redis.pipeline(transaction=False) as pipe:
            yield pipe
            pipe.execute()

    def _observe(self, name: str, buckets: Sequence[float], value: float, label: str = "") -> None:
        key = _hist_key(name)
        index = bisect.bisect_left(buckets, value)
        field = f"{label}|{buckets[index]}" if index < len(buckets) else f"{label}|+Inf"
        with self._writes() as pipe:
            pipe.hincrby(key, field, 1)
            pipe.hincrbyfloat(key, f"{label}|sum", value)
            pipe.hincrby(key, f"{label}|count", 1)

    def observe_chat_latency(self, seconds: float) -> None:
        self._observe(METRIC_CHAT_LATENCY, CHAT_LATENCY_BUCKETS, seconds)

    def observe_first_token(self, seconds: float) -> None:
        """Submission to the first streamed token of the answer."""
        self._observe(METRIC_CHAT_FIRST_TOKEN, FIRST_TOKEN_BUCKETS, seconds)

    def feedback(self, vote: str) -> None:
        """vote: ``up`` or ``down``."""
        self.redis.hincrby(_hist_key(METRIC_FEEDBACK), vote, 1)

    def flow_request(self, status: str, seconds: float) -> None:
        with self._writes() as pipe:
            pipe.hincrby(_hist_key(METRIC_FLOW_REQUESTS), status, 1)
        self._observe(METRIC_FLOW_REQUEST_SECONDS, FLOW_BUCKETS, seconds)

    def rate_limited(self, reason: str) -> None:
        """A chat refused with 429; ``reason`` is one of :data:`RATE_LIMIT_REASONS`."""
        self.redis.hincrby(_hist_key(METRIC_RATE_LIMITED), reason, 1)

    def flow_tokens(self, key: str, prompt: int, completion: int) -> None:
        """Tokens of one Flow call (its ``usage``), per hashed API key id."""
        with self._writes() as pipe:
            pipe.hincrby(_hist_key(METRIC_FLOW_TOKENS), f"prompt|{key}", prompt)
            pipe.hincrby(_hist_key(METRIC_FLOW_TOKENS), f"completion|{key}", completion)

    def chat_answer(self, outcome: str) -> None:
        """outcome: ``answered``, ``empty`` (no usable answer or no sources) or ``failed``."""
        with self._writes() as pipe:
            pipe.hincrby(_hist_key(METRIC_CHAT_ANSWERS), outcome, 1)


def _read_histogram(
    connection: redis.Redis, name: str, buckets: Sequence[float], doc: str
) -> HistogramMetricFamily:
    raw = {k.decode(): v.decode() for k, v in connection.hgetall(_hist_key(name)).items()}
    cumulative, counts = 0, []
    for bound in [*buckets, math.inf]:
        label = "+Inf" if bound == math.inf else str(bound)
        cumulative += int(raw.get(f"|{label}", 0))
        counts.append((label, cumulative))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets=counts, sum_value=float(raw.get("|sum", 0.0)))
    return family


def directory_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class FlowchatCollector(Collector):
    """Read side, registered by the API: everything is computed at scrape time."""

    def __init__(
        self,
        connection: redis.Redis,
        queue_name: str,
        vector_store_path: Path | None,
        *,
        extra_queues: tuple[str, ...] = (INGEST_QUEUE_NAME,),
    ) -> None:
        self.redis = connection
        self.queue_name = queue_name
        self.queue_names = (queue_name, *(q for q in extra_queues if q != queue_name))
        self.vector_store_path = vector_store_path

    def collect(self) -> Iterator[Metric]:
        """Everything read from Redis is left out while Redis is unreachable, so that the
        scrape still succeeds and ``absent(rq_jobs{...})`` (the Redis-unreachable alert) fires."""
        try:
            families = list(self._from_redis())
        except redis.RedisError:
            families = []
        yield from families
        if self.vector_store_path is not None:
            size = GaugeMetricFamily(
                METRIC_VECTOR_STORE_BYTES, "Bytes on disk of the Chroma persistence directory"
            )
            path = self.vector_store_path
            size.add_metric([], directory_bytes(path) if path.exists() else 0)
            yield size

    def _from_redis(self) -> Iterator[Metric]:
        from rq import Queue, Worker

        jobs = GaugeMetricFamily(
            METRIC_RQ_JOBS, "RQ jobs by queue and status", labels=["queue", "status"]
        )
        workers = GaugeMetricFamily(
            METRIC_RQ_WORKERS, "RQ workers listening on the queue", labels=["queue"]
        )
        for name in self.queue_names:  # the chat queue and the ingestion queue
            queue = Queue(name, connection=self.redis)
            counts = {
                "queued": queue.count,
                "started": queue.started_job_registry.count,
                "finished": queue.finished_job_registry.count,
                "failed": queue.failed_job_registry.count,
                "deferred": queue.deferred_job_registry.count,
                "scheduled": queue.scheduled_job_registry.count,
            }
            for status in RQ_STATUSES:
                jobs.add_metric([name, status], counts[status])
            workers.add_metric([name], Worker.count(queue=queue))
        yield jobs
        yield workers

        yield _read_histogram(
            self.redis,
            METRIC_CHAT_LATENCY,
            CHAT_LATENCY_BUCKETS,
            "End-to-end chat latency: submission to stored answer",
        )
        requests = CounterMetricFamily(
            METRIC_FLOW_REQUESTS.removesuffix("_total"),
            "Requests to Flow chat completions by status",
            labels=["status"],
        )
        for status, value in sorted(self.redis.hgetall(_hist_key(METRIC_FLOW_REQUESTS)).items()):
            requests.add_metric([status.decode()], float(value))
        yield requests
        yield _read_histogram(
            self.redis, METRIC_FLOW_REQUEST_SECONDS, FLOW_BUCKETS, "Duration of Flow requests"
        )
        answers = CounterMetricFamily(
            METRIC_CHAT_ANSWERS.removesuffix("_total"), "Chat jobs by outcome", labels=["outcome"]
        )
        raw_answers = self.redis.hgetall(_hist_key(METRIC_CHAT_ANSWERS))
        for outcome in ("answered", "empty", "failed"):
            answers.add_metric([outcome], float(raw_answers.get(outcome.encode(), 0)))
        yield answers
        tokens = CounterMetricFamily(
            METRIC_FLOW_TOKENS.removesuffix("_total"),
            "Tokens Flow billed (its usage), by kind and hashed API key id",
            labels=["kind", "key"],
        )
        for field, value in sorted(self.redis.hgetall(_hist_key(METRIC_FLOW_TOKENS)).items()):
            kind, _, key = field.decode().partition("|")
            tokens.add_metric([kind, key], float(value))
        yield tokens
        empty = CounterMetricFamily(
            METRIC_EMPTY_ANSWERS.removesuffix("_total"),
            "Chat answers with no usable content or sources",
        )
        empty.add_metric([], float(raw_answers.get(b"empty", 0)))
        yield empty
        yield _read_histogram(
            self.redis,
            METRIC_CHAT_FIRST_TOKEN,
            FIRST_TOKEN_BUCKETS,
            "Time to first token: submission to the first streamed piece of the answer",
        )
        feedback = CounterMetricFamily(
            METRIC_FEEDBACK.removesuffix("_total"), "Votes on answers", labels=["vote"]
        )
        raw_votes = self.redis.hgetall(_hist_key(METRIC_FEEDBACK))
        for vote in FEEDBACK_VOTES:
            feedback.add_metric([vote], float(raw_votes.get(vote.encode(), 0)))
        yield feedback
        limited = CounterMetricFamily(
            METRIC_RATE_LIMITED.removesuffix("_total"),
            "Chat requests refused with 429, by reason",
            labels=["reason"],
        )
        raw_limited = self.redis.hgetall(_hist_key(METRIC_RATE_LIMITED))
        for reason in RATE_LIMIT_REASONS:
            limited.add_metric([reason], float(raw_limited.get(reason.encode(), 0)))
        yield limited
        yield from redis_memory_families(self.redis)


def redis_memory_families(connection: redis.Redis) -> Iterator[Metric]:
    """Redis memory in use (INFO memory) and its ``maxmemory`` (0: no limit)."""
    info = connection.info("memory")
    used = GaugeMetricFamily(METRIC_REDIS_MEMORY_USED_BYTES, "Memory Redis uses (used_memory)")
    used.add_metric([], float(info.get("used_memory", 0)))
    yield used
    maximum = GaugeMetricFamily(
        METRIC_REDIS_MEMORY_MAX_BYTES, "Redis maxmemory (0: no limit configured)"
    )
    maximum.add_metric([], float(info.get("maxmemory", 0)))
    yield maximum
