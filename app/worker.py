"""The RQ worker: ``answer_chat`` jobs on ``flow_tasks``, run by a pool of worker processes.

``python -m app.worker --workers N --threads M`` starts an RQ ``WorkerPool`` of N processes, each
running M :class:`FlowchatWorker` work loops as threads (:mod:`app.worker_threads`; M defaults to
``WORKER_THREADS``), so one process carries M chats in flight. Each loop is a ``SimpleWorker``
(jobs run in the worker process itself), so the embedding model, the Chroma client and the Flow
client are loaded once per process, not once per job.

Abandoned jobs: RQ leaves the job of a SIGKILLed worker in the started registry until its
timeout runs out (minutes). Every worker process keeps a short-lived "alive" key in Redis and
sweeps the registry every few seconds: a started job whose worker has no alive key is handed to
RQ's own ``StartedJobRegistry.cleanup``, which requeues it (jobs carry a ``Retry``) or fails it
with ``AbandonedJobError``. A killed worker's job is back in the queue within ~30 seconds.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from pydantic import BaseModel
from rq import Queue, SimpleWorker, get_current_job
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.worker_pool import WorkerPool

from app.flow.client import FlowClient
from app.flow.errors import FlowError
from app.maintenance import MaintenanceTracker
from app.metrics import MetricsRecorder
from app.rag.embeddings import get_embedder
from app.rag.model_setup import MODEL_DIR
from app.rag.prompt import Source, build_messages
from app.rag.retrieval import retrieve
from app.rag.vectorstore import VectorStore
from app.settings import Settings, get_settings

log = logging.getLogger("flowchat.worker")

ALIVE_PREFIX = "flowchat:worker-alive:"
ALIVE_TTL_SECONDS = 15
HEARTBEAT_SECONDS = 5
SWEEP_SECONDS = 10
SWEEP_LOCK = "flowchat:sweep-lock"


class ChatFailed(RuntimeError):
    """A chat job that cannot produce an answer; the message is the reason shown to the user."""


class Timings(BaseModel):
    queued_seconds: float
    retrieval_seconds: float
    flow_seconds: float
    total_seconds: float


class ChatResult(BaseModel):
    answer: str
    sources: list[Source]
    timings: Timings
    empty: bool


@dataclass
class _Resources:
    settings: Settings
    redis: redis.Redis
    store: VectorStore
    flow: FlowClient
    metrics: MetricsRecorder
    maintenance: MaintenanceTracker


@cache
def _resources() -> _Resources:
    settings = get_settings()
    connection = redis.Redis.from_url(settings.REDIS_URL)
    metrics = MetricsRecorder(connection)
    return _Resources(
        settings=settings,
        redis=connection,
        store=VectorStore.from_settings(settings),
        flow=FlowClient.from_settings(settings, on_request=metrics.flow_request),
        metrics=metrics,
        maintenance=MaintenanceTracker(connection, settings.MAINTENANCE_AFTER_FAILURES),
    )


def answer_chat(question: str, top_k: int | None = None, submitted_at: float | None = None) -> dict:
    """Retrieve sources for ``question``, ask Flow, return answer + sources + timings."""
    res = _resources()
    started = time.time()
    submitted = submitted_at or started
    k = top_k or res.settings.TOP_K
    sources = retrieve(res.store, question, k)
    retrieved = time.time()
    try:
        completion = res.flow.chat(build_messages(question, sources))
    except FlowError as exc:
        res.maintenance.flow_failed(exc.reason)
        res.metrics.chat_answer("failed")
        job = get_current_job()
        if job is not None:  # the Flow client already retried with backoff: do not retry again
            job.retries_left = 0
        raise ChatFailed(f"the Flow LLM gateway did not answer: {exc.reason}") from None
    res.maintenance.flow_succeeded()
    answered = time.time()
    answer = completion.content.strip()
    empty = not answer or not sources
    res.metrics.chat_answer("empty" if empty else "answered")
    res.metrics.observe_chat_latency(answered - submitted)
    result = ChatResult(
        answer=answer,
        sources=sources,
        timings=Timings(
            queued_seconds=round(started - submitted, 4),
            retrieval_seconds=round(retrieved - started, 4),
            flow_seconds=round(answered - retrieved, 4),
            total_seconds=round(answered - submitted, 4),
        ),
        empty=empty,
    )
    return result.model_dump()


def sweep_abandoned(
    connection: redis.Redis, queue_name: str, *, grace: float = ALIVE_TTL_SECONDS
) -> list[str]:
    """Hand the jobs of dead workers to RQ's cleanup (requeue with Retry, else fail)."""
    registry = StartedJobRegistry(queue_name, connection=connection)
    abandoned: dict[str, str] = {}
    for entry, _score in connection.zrange(registry.key, 0, -1, withscores=True):
        member = entry.decode()
        job_id = member.split(":", 1)[0]
        try:
            job = Job.fetch(job_id, connection=connection)
        except Exception:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED or not job.worker_name:
            continue
        if connection.exists(ALIVE_PREFIX + job.worker_name):
            continue
        started_at = job.started_at.timestamp() if job.started_at else 0.0
        if time.time() - started_at < grace:  # the worker may not have sent its first beat yet
            continue
        abandoned[member] = job_id
    if abandoned:
        connection.zadd(registry.key, {member: 0 for member in abandoned})
        registry.cleanup()
        log.warning("requeued or failed abandoned jobs: %s", ", ".join(abandoned.values()))
    return list(abandoned.values())


class FlowchatWorker(SimpleWorker):
    """A SimpleWorker that loads the model up front, beats, and sweeps abandoned jobs."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        get_embedder()  # load once, before the first job
        _resources()
        self._stop_beating = threading.Event()
        beat = threading.Thread(target=self._beat, name="flowchat-heartbeat", daemon=True)
        beat.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            self._stop_beating.set()
            self.connection.delete(ALIVE_PREFIX + self.name)

    def _beat(self) -> None:
        last_sweep = 0.0
        while not self._stop_beating.is_set():
            try:
                self.connection.set(ALIVE_PREFIX + self.name, "1", ex=ALIVE_TTL_SECONDS)
                if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    # one sweeper at a time: two could requeue the same abandoned job twice
                    if self.connection.set(SWEEP_LOCK, self.name, nx=True, ex=SWEEP_SECONDS):
                        for queue in self.queues:
                            sweep_abandoned(self.connection, queue.name)
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)
            self._stop_beating.wait(HEARTBEAT_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the flowchat worker pool on the RQ queue.")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="RQ work loops (chats in flight) per process (default: WORKER_THREADS)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    threads = args.threads if args.threads is not None else settings.WORKER_THREADS
    if threads < 1:
        print("--threads must be at least 1")
        return 2
    connection = redis.Redis.from_url(settings.REDIS_URL)
    try:
        connection.ping()
    except redis.RedisError as exc:
        print(f"cannot reach Redis at REDIS_URL: {exc}")
        return 1
    if not (MODEL_DIR / "model.onnx").exists():  # fail fast, before the pool starts
        print("the embedding model is missing: run `python -m app.rag.model_setup`")
        return 1
    queue = Queue(settings.RQ_QUEUE, connection=connection)
    from app.worker_threads import threaded_worker_class  # it builds on FlowchatWorker

    pool = WorkerPool(
        [queue],
        connection=connection,
        num_workers=args.workers,
        worker_class=threaded_worker_class(threads),
    )
    pool.start(burst=args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
