"""The ingestion worker pool: ``python -m app.ingest.worker --workers N``.

It listens only to ``flow_ingest`` (uploads and rebuilds); chat workers (``python -m app.worker``)
listen only to ``flow_tasks``, so a long OCR job or a rebuild never delays a chat.

:class:`IngestWorker` is the chat pool's :class:`app.worker.runner.FlowchatWorker` (same alive key,
heartbeat and abandoned-job sweep, reused, not copied) with two differences: it loads the
vector store instead of the chat resources, and after each sweep it runs the document
reconciler (:func:`app.ingest.queueing.reconcile`), which fails documents left ``queued`` or
``ingesting`` by a job that no longer exists.

Stopping: SIGTERM to the pool sends each worker a warm-shutdown signal; a worker finishes its
current job, then exits (drain). If it is killed before (grace period over), the sweep of
another worker hands the job back to the queue (it has retries) within ~30 s, and on its last
attempt the document ends ``failed`` with the reason.
"""

from __future__ import annotations

import argparse
import logging
from multiprocessing.process import BaseProcess

import redis
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import ForkProcess, RQScheduler
from rq.scheduler import run as run_scheduler
from rq.worker_pool import WorkerPool

from app.contracts import INGEST_QUEUE_NAME
from app.core.redis_clients import JOB_SERIALIZER
from app.core.settings import get_settings
from app.documents.store import DocumentStore
from app.ingest import confine, jobs
from app.ingest.queueing import ingest_queue, reconcile
from app.observability import tracing
from app.observability.logs import configure_logging
from app.rag.embeddings import get_embedder
from app.worker.runner import FlowchatWorker, pool_connection

log = logging.getLogger("flowchat.ingest.worker")


def _run_scheduler(scheduler: RQScheduler) -> None:
    """RQ's scheduler process (it moves retries that wait an interval back to the queue). RQ
    logs an error that stops it, then re-raises, and multiprocessing prints the traceback a
    second time, raw, on stderr: the log would get lines that are not JSON (seen when Redis
    restarts). Here the process ends with exit code 1 instead; the worker starts a new one."""
    try:
        run_scheduler(scheduler)
    except Exception:
        raise SystemExit(1) from None


class _Scheduler(RQScheduler):
    def start(self) -> BaseProcess:  # RQ's start(), with the process body above
        self._status = self.Status.STARTED
        self._connection = None  # a Redis client cannot cross the fork (as RQ does)
        self._process = ForkProcess(target=_run_scheduler, args=(self,), name="Scheduler")
        self._process.start()
        return self._process


class IngestWorker(FlowchatWorker):
    """A FlowchatWorker for the ingestion queue that also reconciles stuck documents."""

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ 3.0's own, building a :class:`_Scheduler` (no raw tracebacks in the log)."""
        self.scheduler = _Scheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def warm_up(self) -> None:
        confine.keep_environment_private()  # parsing children must not read it (/proc)
        get_embedder()
        jobs._vector_store()

    def after_sweep(self) -> None:
        try:
            reconcile(self.connection, DocumentStore.from_settings(get_settings()))
        except (OSError, redis.RedisError) as exc:  # the next sweep tries again
            log.warning("document reconciler failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=f"Run the flowchat ingestion worker pool on the {INGEST_QUEUE_NAME} queue."
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    confine.keep_environment_private()  # parsing children must not read it (/proc)
    configure_logging("ingest-worker")
    tracing.configure_tracing("ingest-worker")
    settings = get_settings()
    connection = pool_connection(settings)
    if connection is None:
        return 1
    pool = WorkerPool(
        [ingest_queue(connection)],
        connection=connection,
        num_workers=args.workers,
        worker_class=IngestWorker,
        serializer=JOB_SERIALIZER,
    )
    pool.start(burst=args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
