"""``python -m app.worker``: start the chat worker pool (N processes of M threaded RQ loops).

``python -m app.worker --workers N --threads M [--burst]``: see :mod:`app.worker.runner` for
what one loop does and :mod:`app.worker.threads` for the loops of one process. Kept apart from
both so the runner never imports the threaded worker that builds on it.
"""

from __future__ import annotations

import argparse

from rq.worker_pool import WorkerPool

from app.core.redis_clients import JOB_SERIALIZER, job_queue
from app.core.settings import get_settings
from app.observability import tracing
from app.observability.logs import configure_logging
from app.worker.runner import pool_connection
from app.worker.threads import threaded_worker_class


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.worker", description="Run the flowchat worker pool on the RQ queue."
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="RQ work loops (chats in flight) per process (default: WORKER_THREADS)",
    )
    args = parser.parse_args(argv)
    configure_logging("worker")
    tracing.configure_tracing("worker")
    settings = get_settings()
    threads = args.threads if args.threads is not None else settings.WORKER_THREADS
    if threads < 1:
        print("--threads must be at least 1")
        return 2
    connection = pool_connection(settings)
    if connection is None:
        return 1
    queue = job_queue(settings.RQ_QUEUE, connection)

    pool = WorkerPool(
        [queue],
        connection=connection,
        num_workers=args.workers,
        worker_class=threaded_worker_class(threads),
        serializer=JOB_SERIALIZER,
    )
    pool.start(burst=args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
