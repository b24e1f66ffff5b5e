"""The RQ worker: ``answer_chat`` jobs on ``flow_tasks``, run by a pool of worker processes.

``python -m app.worker --workers N --threads M`` starts an RQ ``WorkerPool`` of N processes, each
running M :class:`FlowchatWorker` work loops as threads (:mod:`app.worker.threads`; M defaults to
``WORKER_THREADS``), so one process carries M chats in flight. Each loop is a ``SimpleWorker``
(jobs run in the worker process itself), so the embedding model, the Chroma client and the Flow
client are loaded once per process, not once per job.

Abandoned jobs: RQ leaves the job of a SIGKILLed worker in the started registry until its
timeout runs out (minutes). Every worker process keeps a short-lived "alive" key in Redis and
sweeps the registry every few seconds: a started job whose worker has no alive key is handed to
RQ's own ``StartedJobRegistry.cleanup``, which requeues it (jobs carry a ``Retry``) or fails it
with ``AbandonedJobError``. A killed worker's job is back in the queue within ~30 seconds.

Stranded jobs: a worker moves a job from the queue to RQ's intermediate list before it records
the start. A worker killed, or a Redis restarted, between the two leaves the job in neither the
queue nor the started registry (its status stays "queued"). The same sweep runs RQ's own
``IntermediateQueue.cleanup``, which retries such a job once it has been stranded for a minute;
RQ itself runs it only with its registry maintenance, every 10 minutes. A worker killed after
it registered a run but before it marked the job started leaves the job "queued" in the started
registry, where RQ's cleanup never looks: the sweep takes it out, and it is stranded like the
others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis
from rq import Queue, SimpleWorker, get_current_job
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty
from rq.utils import now
from rq.worker import BaseWorker, WorkerStatus

from app.chat import conversations
from app.chat.jobs import notify_done
from app.chat.refusal import refusal
from app.chat.results import ChatJob, ChatResult, Timings, Usage
from app.chat.stream import StreamWriter
from app.contracts import ALIVE_PREFIX, ALIVE_TTL_SECONDS, CHAT_JOB
from app.core.redis_clients import JOB_SERIALIZER, redis_client
from app.core.settings import Settings
from app.flow.errors import FlowError, FlowStreamError
from app.ingest.jobs import REBUILD_JOB
from app.ingest.queueing import INGEST_FAILED_CALLBACK, INGEST_JOB
from app.observability import tracing
from app.observability.logs import ANONYMOUS_KEY, current_ids
from app.rag.embeddings import get_embedder
from app.rag.model_setup import MODEL_DIR
from app.rag.prompt import build_messages
from app.rag.retrieval import answerable, retrieve, retrieve_any
from app.worker.resources import worker_resources

log = logging.getLogger("flowchat.worker")

HEARTBEAT_SECONDS = 5
SWEEP_SECONDS = 10
SWEEP_LOCK = "flowchat:sweep-lock"
# the worker's pubsub listener (RQ's commands) wakes this often; RQ uses 60 s, and redis-py 8's
# PubSubWorkerThread.stop() waits for the listener, so a worker took up to 60 s to leave
PUBSUB_POLL_SECONDS = 1.0

# The only functions a worker runs, and the only callbacks it calls: a job naming anything else
# (``os.system``, say) is failed before anything is imported. Write access to Redis is then not
# code execution. A new job function or callback must be added here.
ALLOWED_JOB_FUNCTIONS = frozenset(
    {
        CHAT_JOB,
        INGEST_JOB,
        REBUILD_JOB,
    }
)
ALLOWED_CALLBACKS = frozenset({"app.chat.jobs.notify_done", INGEST_FAILED_CALLBACK})


class JobRefused(RuntimeError):
    """A job that names a function or callback outside the allowlists."""


def job_refusal(job: Job) -> str | None:
    """Why ``job`` must not run, or None when it only names allowed functions."""
    if job.func_name not in ALLOWED_JOB_FUNCTIONS:
        return f"job function {str(job.func_name)[:100]!r} is not one of the service's jobs"
    for name in (
        job._success_callback_name,
        job._failure_callback_name,
        job._stopped_callback_name,
    ):
        if name is not None and name not in ALLOWED_CALLBACKS:
            return f"job callback {name[:100]!r} is not one of the service's callbacks"
    return None


class ChatFailed(RuntimeError):
    """A chat job that cannot produce an answer; the message is the reason shown to the user."""


def answer_chat(
    question: str,
    top_k: int | None = None,
    submitted_at: float | None = None,
    conversation_id: str | None = None,
    history: list[dict] | None = None,
    key_id: str | None = None,
    reserved_tokens: int = 0,
) -> dict:
    """Retrieve sources for ``question`` (made standalone from the conversation), ask Flow with
    streaming, publish the answer to the job's stream as it arrives, return answer + sources +
    usage + timings (the job's stored result).

    The Flow tokens the answer used settle ``key_id``'s reservation (``reserved_tokens``); when
    Flow reports no usage, or the answer breaks off or times out, the reservation stays
    charged."""
    res = worker_resources()
    spec = ChatJob(
        question=question,
        top_k=top_k,
        submitted_at=submitted_at,
        conversation_id=conversation_id,
        history=history or [],
        key_id=key_id,
        reserved_tokens=reserved_tokens,
    )
    owner = spec.key_id or ANONYMOUS_KEY
    started = time.time()
    submitted = spec.submitted_at or started
    job = get_current_job()
    stream = StreamWriter(res.redis, job.id) if job is not None else None
    if stream is not None:
        stream.start()
    turns = spec.history
    if spec.conversation_id and not turns:
        turns = conversations.load(res.redis, owner, spec.conversation_id)
    standalone = conversations.standalone_question(spec.question, turns)
    k = spec.top_k or res.settings.TOP_K
    if standalone == spec.question:
        sources = retrieve(res.store, spec.question, k)
    else:  # a follow-up: the best chunks for it alone or made standalone
        sources = retrieve_any(res.store, [spec.question, standalone], k)
    retrieved = time.time()
    refuse = not answerable(sources)
    if refuse:  # nothing relevant was found: the refusal sentence, without asking Flow
        sources = []
    if stream is not None:
        stream.sources([s.model_dump(mode="json") for s in sources])
    first_token: list[float] = []

    def on_delta(text: str) -> None:
        if text and not first_token:
            first_token.append(time.time())
            res.metrics.observe_first_token(first_token[0] - submitted)
        if stream is not None:
            stream.delta(text)

    history = [t.model_dump() for t in conversations.bounded(turns)]
    try:
        try:
            completion = (
                refusal(on_delta)
                if refuse
                else res.flow.chat_stream(
                    build_messages(spec.question, sources, history=history),
                    on_delta,
                    max_tokens=res.settings.CHAT_MAX_TOKENS,
                )
            )
        except FlowError as exc:
            res.maintenance.flow_failed(exc.reason)
            res.metrics.chat_answer("failed")
            reason = (  # a fixed sentence per kind: Flow's own words stay in the worker's log
                "the Flow LLM gateway broke off the answer mid-stream; try again later"
                if isinstance(exc, FlowStreamError)
                else "the Flow LLM gateway did not answer; try again later"
            )
            if stream is not None:
                stream.error(reason)
            if job is not None:  # the Flow client already retried with backoff: do not retry again
                job.retries_left = 0
            # the reason stays in the worker's log; the client gets a fixed sentence
            log.warning("chat job failed: Flow did not answer: %s", exc.reason)
            raise ChatFailed(reason) from None
        if not refuse:  # Flow was not asked: its state is unknown
            res.maintenance.flow_succeeded()
        if completion.usage is not None:
            usage = completion.usage
            if spec.key_id:  # the key's daily Flow-token budget (app/access/quotas.py)
                res.quotas.settle(
                    spec.key_id,
                    spec.reserved_tokens,
                    usage.total_tokens,
                    job_id=job.id if job is not None else None,
                )
            # per key id: the job's key_id is the hash the API logs (app.access.keys.key_id)
            key = spec.key_id or current_ids().get("api_key_id", ANONYMOUS_KEY)
            res.metrics.flow_tokens(key, usage.prompt_tokens, usage.completion_tokens)
            tokens = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            }
            log.info("flow usage", extra=tokens)
        elif refuse and spec.key_id:  # Flow was not asked: the whole reservation is given back
            res.quotas.settle(
                spec.key_id, spec.reserved_tokens, 0, job_id=job.id if job is not None else None
            )
        answered = time.time()
        answer = completion.content.strip()
        empty = not answer or not sources
        res.metrics.chat_answer("empty" if empty else "answered")
        res.metrics.observe_chat_latency(answered - submitted)
        usage = completion.usage
        result = ChatResult(
            answer=answer,
            sources=sources,
            timings=Timings(
                queued_seconds=round(started - submitted, 4),
                retrieval_seconds=round(retrieved - started, 4),
                flow_seconds=round(answered - retrieved, 4),
                total_seconds=round(answered - submitted, 4),
                first_token_seconds=round(first_token[0] - submitted, 4) if first_token else None,
            ),
            empty=empty,
            usage=Usage.model_validate(usage.model_dump()) if usage else Usage(),
            conversation_id=spec.conversation_id,
        )
        if spec.conversation_id:
            conversations.append(res.redis, owner, spec.conversation_id, spec.question, answer)
        stored = result.model_dump(mode="json")
        if stream is not None:
            stream.done(stored)
        return stored
    except BaseException:
        if stream is not None:  # e.g. the job timed out: the reader keeps the text so far
            with contextlib.suppress(redis.RedisError):
                stream.flush()
        raise


def sweep_abandoned(
    connection: redis.Redis, queue_name: str, *, grace: float = ALIVE_TTL_SECONDS
) -> list[str]:
    """Hand the jobs of dead workers to RQ's cleanup (requeue with Retry, else fail)."""
    # cleanup() fetches the jobs and runs their failure callbacks: read them as JSON. The sweep
    # runs in the heartbeat thread, where RQ's default (SIGALRM) time limit on a callback cannot
    # be set: it raised, RQ logged and swallowed it, and no failure callback ever ran from here
    # (waiters not woken, ingestion failures not recorded). A timer thread bounds it instead.
    registry = StartedJobRegistry(
        queue_name,
        connection=connection,
        serializer=JOB_SERIALIZER,
        death_penalty_class=TimerDeathPenalty,
    )
    abandoned: dict[str, str] = {}
    unstarted: list[str] = []
    for entry, _score in connection.zrange(registry.key, 0, -1, withscores=True):
        member = entry.decode()
        job_id = member.split(":", 1)[0]
        try:
            job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
        except Exception:
            continue
        status = job.get_status(refresh=False)
        if status == JobStatus.QUEUED and _registered_by_a_dead_worker(connection, member, grace):
            unstarted.append(member)
            continue
        if status != JobStatus.STARTED or not job.worker_name:
            continue
        if connection.exists(ALIVE_PREFIX + job.worker_name):
            continue
        started_at = job.started_at.timestamp() if job.started_at else 0.0
        if time.time() - started_at < grace:  # the worker may not have sent its first beat yet
            continue
        abandoned[member] = job_id
    if unstarted:
        # RQ's cleanup skips a job that is not "started" (it takes it for a leftover): left
        # here, the job would stay in the registry, and so out of every queue, for good. Out of
        # the registry, it is a job stranded in the intermediate list, which sweep_queue retries.
        connection.zrem(registry.key, *unstarted)
        log.warning("released jobs whose worker died before starting them: %s", len(unstarted))
    if abandoned:
        connection.zadd(registry.key, {member: 0 for member in abandoned})
        registry.cleanup()
        log.warning("requeued or failed abandoned jobs: %s", ", ".join(abandoned.values()))
        _wake_waiters_of_failed_chats(connection, list(abandoned.values()))
    return list(abandoned.values())


def _wake_waiters_of_failed_chats(connection: redis.Redis, job_ids: list[str]) -> None:
    """RQ runs a failure callback before it records the failure: the waiters it woke may have
    looked before the record. Once the cleanup has recorded it, wake them again."""
    for job_id in job_ids:
        try:
            job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
            is_chat = job.func_name == CHAT_JOB
        except Exception:  # gone, or not one of ours (unreadable as JSON)
            continue
        if is_chat and job.get_status(refresh=False) == JobStatus.FAILED:
            notify_done(job, connection)


def _registered_by_a_dead_worker(connection: redis.Redis, member: str, grace: float) -> bool:
    """True for a started-registry entry (``JOB_ID:EXECUTION_ID``) whose worker registered the
    run (RQ's ``prepare_execution``) and then stopped beating, older than ``grace``: a worker
    killed before it marked the job started. A missing execution has expired: nobody runs it."""
    job_id, _, execution_id = member.partition(":")
    try:
        execution = Execution.fetch(execution_id, job_id, connection)
    except ValueError:
        return True
    if execution.worker_name and connection.exists(ALIVE_PREFIX + execution.worker_name):
        return False
    return time.time() - execution.created_at.timestamp() >= grace


def sweep_queue(worker: BaseWorker, queue: Queue) -> None:
    """One sweep of ``queue``: the jobs of dead workers (:func:`sweep_abandoned`), then the jobs
    stranded in RQ's intermediate list, retried by RQ's cleanup a minute after it first saw them
    (``worker`` records the failed attempt, as RQ's own maintenance does)."""
    sweep_abandoned(worker.connection, queue.name)
    stranded = queue.intermediate_queue
    # RQ keeps a job's first-seen mark for a day, even once the job has started: a retry of the
    # same job caught between dequeue and start on a later sweep would count from the old mark
    # and be handed back while its worker starts it. Marks of jobs no longer stranded go.
    waiting = set(stranded.get_job_ids())
    prefix = stranded.get_first_seen_key("")
    for key in worker.connection.scan_iter(match=prefix + "*", count=1000):
        if key.decode().removeprefix(prefix) not in waiting:
            worker.connection.delete(key)
    stranded.cleanup(worker, queue)


def pool_connection(settings: Settings) -> redis.Redis | None:
    """Redis for a worker pool about to start, or None after printing the one sentence that says
    why it cannot: Redis unreachable, or the embedding model missing (fail before forking)."""
    connection = redis_client(settings)
    try:
        connection.ping()
    except redis.RedisError as exc:
        print(f"cannot reach Redis at REDIS_URL: {exc}")
        return None
    if not (MODEL_DIR / "model.onnx").exists():
        print("the embedding model is missing: run `python -m app.rag.model_setup`")
        return None
    return connection


class FlowchatWorker(SimpleWorker):
    """A SimpleWorker that loads the model up front, beats, sweeps abandoned jobs, runs only
    the allowlisted job functions, and never logs a job's description (it holds the question)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["log_job_description"] = False
        kwargs["serializer"] = JOB_SERIALIZER
        super().__init__(*args, **kwargs)

    def perform_job(self, job: Job, queue: Queue, execution: Any) -> bool:
        reason = job_refusal(job)
        if reason is None:
            with tracing.job_scope(job) as run:  # the job's span and log ids (from its meta)
                return run.finish(super().perform_job(job, queue, execution)) == "finished"
        log.error("refused job %s: %s", job.id, reason)
        # nothing the job names is imported: not its function, not its callbacks
        job._success_callback_name = None
        job._failure_callback_name = None
        job._stopped_callback_name = None
        job._success_callback = job._failure_callback = job._stopped_callback = None
        job.retries_left = 0
        self.prepare_job_execution(job, len(self.queues) == 1)
        error = JobRefused(reason)
        self._finalize_failure(job, queue, execution, (JobRefused, error, None))
        return False

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ marks the worker idle after each job and again before it waits for the next one:
        the second write (a round trip of its own per job) is left out when nothing changed."""
        if pipeline is None and state == WorkerStatus.IDLE and self._state == WorkerStatus.IDLE:
            return
        super().set_state(state, pipeline)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ stamps the job's last heartbeat in a Redis round trip of its own right before the
        pipeline that records the outcome. A chat that returned (it has no success callback to
        run in between) is saved whole by that pipeline, the stamp included: set it on the job
        only. A failure keeps RQ's order (its callback runs between the two)."""
        ended_well = job.get_status(refresh=False) != JobStatus.FAILED
        if job.func_name == CHAT_JOB and ended_well and job._success_callback_name is None:
            job.ended_at = job.last_heartbeat = now()
            return
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """Record the success (RQ), then wake the API requests waiting on a chat: RQ runs a
        job's success callback before it records the outcome, so a request woken by a callback
        would find the job still running and poll until RQ catches up."""
        super().handle_job_success(job, queue, *args, **kwargs)
        if job.func_name == CHAT_JOB:
            # on a Redis error the waiter still reads the job within DONE_WAIT_SECONDS
            with contextlib.suppress(redis.RedisError):
                notify_done(job, self.connection)

    def subscribe(self) -> None:
        """RQ's subscription to the worker's command channel, with a listener that wakes every
        :data:`PUBSUB_POLL_SECONDS`: when the worker leaves, RQ stops the listener and redis-py
        waits for it to notice, which took up to RQ's 60 s (a loop of a threaded worker, a
        warm shutdown, a burst worker all stalled for a minute)."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_POLL_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )

    def warm_up(self) -> None:
        """Load what every job needs once, before the first job."""
        get_embedder()
        worker_resources()

    def after_sweep(self) -> None:
        """Runs after each sweep, under the sweep lock (subclasses add their own checks)."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self.warm_up()
        self._stop_beating = threading.Event()
        beat = threading.Thread(target=self._beat, name="flowchat-heartbeat", daemon=True)
        beat.start()
        try:
            return super().work(*args, **kwargs)
        except Exception:
            # e.g. Redis gone while RQ tears down: one JSON line, not multiprocessing's raw
            # traceback on stderr; the exit code still says it died (the pool or supervisor
            # restarts it)
            log.exception("worker %s stopped on an error", self.name)
            raise SystemExit(1) from None
        finally:
            self._stop_beating.set()
            with contextlib.suppress(redis.RedisError):  # else it expires (ALIVE_TTL_SECONDS)
                self.connection.delete(ALIVE_PREFIX + self.name)

    def _beat(self) -> None:
        """Keep the alive key fresh and sweep, until the worker stops. Nothing a sweep raises
        ends the loop: a worker that works on without beating looks dead, and the next sweep
        would hand its running job to a second worker."""
        last_sweep = 0.0
        while not self._stop_beating.is_set():
            try:
                self.connection.set(ALIVE_PREFIX + self.name, "1", ex=ALIVE_TTL_SECONDS)
                if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    self._sweep()
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:  # a failure callback the sweep ran, a job it could not read
                log.exception("sweep failed; the next one runs in %s s", SWEEP_SECONDS)
            self._stop_beating.wait(HEARTBEAT_SECONDS)

    def _sweep(self) -> None:
        # one sweeper at a time per queue set (chat and ingest pools each sweep their own):
        # two could requeue the same abandoned job twice
        lock = ":".join([SWEEP_LOCK, *sorted(q.name for q in self.queues)])
        if self.connection.set(lock, self.name, nx=True, ex=SWEEP_SECONDS):
            for queue in self.queues:
                sweep_queue(self, queue)
            self.after_sweep()
