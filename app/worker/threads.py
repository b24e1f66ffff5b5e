"""Many chats in flight per worker process: M RQ work loops as threads of one process.

A chat job spends almost all its time waiting on Flow, and RQ runs one job per worker. So each
worker process (one per ``--workers``, started by RQ's ``WorkerPool``) runs ``--threads`` work
loops. Every loop is a complete, registered RQ worker (:class:`LoopWorker`, a
:class:`~app.worker.runner.FlowchatWorker`) with its own name and its own Redis connection pool,
so RQ's bookkeeping stays per job exactly as with one process per job: ``rq_workers`` counts
loops, the started registry names the loop running each job, every loop beats its own alive
key, and the abandoned-job sweep (:func:`app.worker.runner.sweep_abandoned`) and RQ's retries
work unchanged. A SIGKILLed process takes all its loops' alive keys with it: their jobs go back
to the queue.

What the threads share, loaded once before the first loop starts: the embedding model (onnxruntime
releases the interpreter lock while it runs), the Chroma client, the Flow HTTP client (one
connection pool, one cached token) and the metrics writer.

What changes for threads, and why:

- Per-job timeouts use RQ's ``TimerDeathPenalty`` (a timer thread raises the timeout in the job's
  thread): SIGALRM can only interrupt the main thread. The exception is delivered between
  bytecodes, so a job blocked in a socket read sees it when the read returns; the Flow client's
  own timeouts bound those reads (``Settings`` checks that ``JOB_TIMEOUT_SECONDS`` exceeds them).
- Signals are handled in the main thread only (:class:`ThreadedWorker`): the first SIGTERM or
  SIGINT is a warm shutdown (every loop stops after its current job, idle loops within
  :data:`IDLE_WAIT_SECONDS`), a second one more than a second later is a cold shutdown (the
  process exits; the sweep requeues the jobs it was running).
- RQ only re-reads its stop flag after a job; an idle loop waiting in ``BLMOVE`` is woken every
  :data:`IDLE_WAIT_SECONDS` and leaves at once when a stop was requested.
- A loop that ends on its own (RQ quits a loop on an unexpected error) is replaced by a new loop
  with a new name, at most once a second per slot; the process keeps its capacity.
- Loops do not start RQ's scheduler: chat jobs are never scheduled (their ``Retry`` has no
  interval), and the scheduler forks a process, which a threaded process must not do.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

from redis import ConnectionPool, Redis
from rq.connections import parse_connection
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty
from rq.utils import now

from app.observability.metrics import MetricsRecorder
from app.rag.embeddings import get_embedder
from app.worker.resources import worker_resources
from app.worker.runner import FlowchatWorker

log = logging.getLogger("flowchat.worker")

# an idle loop blocks in BLMOVE for this long before it looks at its stop flag again; RQ derives
# the wait from the worker TTL (ttl - 15 s), and the worker key lives ttl + 60 s between beats
IDLE_WAIT_SECONDS = 5
LOOP_WORKER_TTL = IDLE_WAIT_SECONDS + 15
HEARTBEAT_MIN_SECONDS = 1.0  # RQ's worker key lives LOOP_WORKER_TTL + 60 s: beat less often
QUERY_EMBEDDING_THREADS = 1  # onnxruntime threads per question embedding in a chat worker
RESPAWN_MIN_SECONDS = 1.0  # a slot whose loop ended is refilled at most this often
COLD_AFTER_SECONDS = 1.0  # a second signal within this is the same Ctrl-C (pool + terminal)
JOIN_POLL_SECONDS = 0.5  # the main thread wakes this often (signals run between waits)


class LoopWorker(FlowchatWorker):
    """One RQ work loop of a threaded worker process (runs in a thread, never the main one)."""

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", LOOP_WORKER_TTL)
        super().__init__(*args, **kwargs)

    def _install_signal_handlers(self) -> None:
        """Only the main thread may install signal handlers: :class:`ThreadedWorker` does."""

    def procline(self, message: str) -> None:
        """The process title is shared by every loop: leave it alone."""

    @property
    def should_run_maintenance_tasks(self) -> bool:
        # RQ reads this at the top of every wait for a job (and of every turn of the work loop);
        # that is where an idle loop must notice a warm shutdown, since RQ itself re-reads its
        # stop flag only after a job. A job is never held here: it is read before BLMOVE.
        if self._stop_requested:
            raise StopRequested()
        return super().should_run_maintenance_tasks

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        # the job's metrics (Flow request, latency, outcome) go to Redis in one round trip
        with MetricsRecorder(self.connection).batch():
            return super().perform_job(job, queue, execution)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat in one round trip instead of three, and at most once a second with
        the default TTL (RQ beats twice around every dequeue and once after every job)."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        last = self.last_heartbeat
        recent = last is not None and (now() - last).total_seconds() < HEARTBEAT_MIN_SECONDS
        if timeout is None and recent:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()

    def request_warm_stop(self) -> None:
        """Called from the main thread: finish the current job (if any), then leave."""
        self._shutdown_requested_date = now()
        self._stop_requested = True


class ThreadedWorker:
    """One worker process running ``threads`` :class:`LoopWorker` loops.

    ``WorkerPool`` builds it like an RQ worker class (``worker_class=``), in each pool process,
    and calls :meth:`work`; it registers nothing itself: its loops are the RQ workers.
    """

    threads = 32  # set per pool by :func:`threaded_worker_class`

    def __init__(
        self,
        queues: Iterable[Any],
        name: str | None = None,
        connection: Redis | None = None,
        **kwargs: Any,
    ) -> None:
        if connection is None:
            raise ValueError("a ThreadedWorker needs a Redis connection")
        self.queue_names = [q if isinstance(q, str) else q.name for q in queues]
        self.name = name or os.urandom(16).hex()
        self.connection = connection
        self.worker_kwargs = {
            k: v
            for k, v in kwargs.items()
            if k in ("serializer", "job_class", "queue_class", "exception_handlers")
        }
        self.log = log
        self.loops: dict[int, tuple[LoopWorker, threading.Thread]] = {}
        self._generation = 0
        self._stopping = False
        self._stop_signalled_at: float | None = None
        # re-entrant: the signal handler takes it in the main thread, which may already hold it
        self._lock = threading.RLock()

    # --- loops --------------------------------------------------------------------------------
    def _loop_connection(self) -> Redis:
        """Each loop gets its own pool: a loop holds one connection in BLMOVE and one for RQ's
        pubsub at all times, which a shared bounded pool would run out of."""
        connection_class, pool_class, pool_kwargs = parse_connection(self.connection)
        return connection_class(
            connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs)
        )

    def _new_loop(self, slot: int, burst: bool, logging_level: str) -> None:
        self._generation += 1
        connection = self._loop_connection()
        queue_class = self.worker_kwargs.get("queue_class")
        serializer = self.worker_kwargs.get("serializer")
        queues = [
            (queue_class or _default_queue_class())(
                name, connection=connection, **({"serializer": serializer} if serializer else {})
            )
            for name in self.queue_names
        ]
        loop = LoopWorker(
            queues,
            name=f"{self.name}-{self._generation:02d}",  # a replaced loop gets a new name
            connection=connection,
            **self.worker_kwargs,
        )
        thread = threading.Thread(
            target=self._run_loop,
            args=(loop, burst, logging_level),
            name=f"rq-loop-{slot:02d}",
            daemon=True,  # a cold shutdown must not wait for a job in flight
        )
        self.loops[slot] = (loop, thread)
        thread.started_at = time.monotonic()  # type: ignore[attr-defined]
        thread.start()

    @staticmethod
    def _run_loop(loop: LoopWorker, burst: bool, logging_level: str) -> None:
        try:
            loop.work(burst=burst, logging_level=logging_level, with_scheduler=False)
        except Exception:
            log.exception("worker loop %s ended with an error", loop.name)

    def request_warm_stop(self) -> None:
        with self._lock:
            self._stopping = True
            for loop, _thread in self.loops.values():
                loop.request_warm_stop()

    # --- signals (main thread) ----------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        at = time.monotonic()
        if self._stop_signalled_at is None:
            log.info("warm shutdown: every loop stops after its current job")
            self._stop_signalled_at = at
            self.request_warm_stop()
            return
        if at - self._stop_signalled_at < COLD_AFTER_SECONDS:
            return  # the pool's SIGINT and the terminal's Ctrl-C are one request
        log.warning("cold shutdown: leaving the jobs in flight to the abandoned-job sweep")
        raise SystemExit(1)

    # --- the process --------------------------------------------------------------------------
    def work(
        self,
        burst: bool = False,
        logging_level: str = "INFO",
        with_scheduler: bool = False,
        **_ignored: Any,
    ) -> bool:
        """Load what jobs share, start the loops, keep them running until a stop; True when
        every loop ended on its own (burst mode) or after a warm shutdown."""
        # once per process, before any loop takes a job; the loops embed one question each, in
        # parallel, so onnxruntime runs each on the calling thread (half the CPU per question)
        get_embedder(intra_op_threads=QUERY_EMBEDDING_THREADS)
        worker_resources()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        for slot in range(self.threads):
            self._new_loop(slot, burst, logging_level)
        log.info("worker process %s runs %d loops", self.name, self.threads)
        while True:
            with self._lock:
                alive = {s: lt for s, lt in self.loops.items() if lt[1].is_alive()}
                ended = [s for s in self.loops if s not in alive]
                if not self._stopping and not burst:
                    for slot in ended:
                        thread = self.loops[slot][1]
                        if time.monotonic() - thread.started_at >= RESPAWN_MIN_SECONDS:  # type: ignore[attr-defined]
                            log.warning("worker loop %s ended: starting a new one", slot)
                            self._new_loop(slot, burst, logging_level)
                            alive[slot] = self.loops[slot]
            if not alive and (self._stopping or burst):
                return True
            if alive:  # signals are handled between these bounded waits
                next(iter(alive.values()))[1].join(JOIN_POLL_SECONDS)
            else:
                time.sleep(JOIN_POLL_SECONDS)


def _default_queue_class() -> type:
    from rq import Queue

    return Queue


def threaded_worker_class(threads: int) -> type[ThreadedWorker]:
    """A :class:`ThreadedWorker` class running ``threads`` loops, for ``WorkerPool``."""
    if threads < 1:
        raise ValueError("threads must be at least 1")
    return type("ThreadedWorker", (ThreadedWorker,), {"threads": threads})
