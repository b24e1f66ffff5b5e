"""Submitting chat jobs and reading them back: shared by the chat and OpenAI-compatible routes
and the job callbacks the worker runs.

Every Redis call here is synchronous (redis-py, like RQ); the async routes run them through
``asyncio.to_thread`` so a slow Redis never stalls the event loop (and with it the liveness
route).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import redis
import redis.asyncio as aioredis
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app.access.keys import ANONYMOUS
from app.access.quotas import Quotas
from app.chat import conversations
from app.chat.budget import estimate
from app.chat.results import ChatJob, ChatResponse, ChatResult, Turn
from app.contracts import CHAT_JOB
from app.core.job_errors import chat_failure_reason
from app.core.redis_clients import JOB_SERIALIZER, REDIS_FULL, is_out_of_memory
from app.core.settings import Settings
from app.observability import tracing
from app.observability.logs import bound

CHAT_RETRY = Retry(max=2)  # for abandoned jobs (a worker killed mid-job); Flow errors don't retry
DONE_KEY = "flowchat:chat-done:{}"  # a list the worker pushes to when a chat job ends
DONE_TTL_SECONDS = 300
RETRY_AFTER_SECONDS = 5
# A waiting request sleeps in BLPOP at most this long before it reads the job again: the worker's
# push wakes it at once, so this only bounds how late it sees an end nobody pushed (a job
# canceled, a push lost to a Redis error). Each wake-up costs a thread hand-off and two Redis
# commands: at 1 s, an answer of a few seconds paid one per second (issue 25). A BLPOP also
# stays within BLPOP_SHARE of the client's socket timeout, and one that meets the timeout anyway
# (Redis stalled in an fsync) is one more wake-up, not an error.
DONE_WAIT_SECONDS = 4.0
BLPOP_SHARE = 0.8


class ChatRejected(Exception):
    """A question the service will not queue: ``status`` is the HTTP status to answer with."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.limit = limit  # the app.access.quotas REASON_* of a 429 (the metric's label)


def notify_done(job: Job, connection: redis.Redis, *_outcome: object) -> None:
    """Wake the API requests waiting on a chat job: after a success (the worker, once RQ has
    recorded it) and as the job's RQ failure callback."""
    key = DONE_KEY.format(job.id)
    with connection.pipeline(transaction=False) as pipe:
        pipe.rpush(key, "1")
        pipe.expire(key, DONE_TTL_SECONDS)
        pipe.execute()


def submit_chat(
    queue: Queue,
    settings: Settings,
    message: str,
    top_k: int | None,
    *,
    conversation_id: str | None = None,
    history: list[Turn] | None = None,
    key_id: str = ANONYMOUS,
    quotas: Quotas | None = None,
) -> Job:
    """Validate and enqueue a question; :class:`ChatRejected` says why when it is refused.

    ``conversation_id``: the worker reads the key's conversation of that id and appends this
    turn; ``history``: the earlier messages given by the caller (``/v1`` multi-turn
    ``messages``), bounded here (:func:`app.chat.conversations.bounded`) before the job is
    written; ``key_id`` (the caller's key id) owns the job: only it can read, stream or vote on
    it. ``quotas``: the chat's Flow tokens and stored bytes are reserved against the key's
    limits first (429 when they do not fit; the worker settles the tokens).
    """
    question = message.strip()
    if not question:
        raise ChatRejected(422, "message is empty: send the question in 'message'")
    if len(question) > settings.MAX_MESSAGE_CHARS:
        raise ChatRejected(
            422,
            f"message is {len(question)} characters long; the limit is "
            f"{settings.MAX_MESSAGE_CHARS} (MAX_MESSAGE_CHARS)",
        )
    if history is not None:
        history = conversations.bounded(history)  # what the worker would use: no more is stored
    reservation = estimate(settings, question, history, top_k)
    reserved = False
    try:
        depth = queue.count
        if depth >= settings.MAX_QUEUE_DEPTH:
            raise ChatRejected(
                429,
                f"the chat queue is full ({depth} of {settings.MAX_QUEUE_DEPTH} jobs waiting); "
                "retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if quotas is not None:
            refusal = quotas.reserve(key_id, reservation.tokens, reservation.stored_bytes)
            if refusal is not None:
                raise ChatRejected(
                    429, refusal.detail, {"Retry-After": str(refusal.retry_after)}, refusal.reason
                )
            reserved = True
        with bound(conversation_id=conversation_id):  # in the job's meta: the worker's lines too
            job = tracing.enqueue(
                queue,
                CHAT_JOB,
                kwargs=ChatJob(
                    question=question,
                    top_k=top_k,
                    submitted_at=time.time(),
                    conversation_id=conversation_id,
                    history=history or [],
                    key_id=key_id,
                    reserved_tokens=reservation.tokens if reserved else 0,
                ).model_dump(mode="json"),
                description="chat",  # RQ shows the description; the question stays out of it
                job_timeout=settings.JOB_TIMEOUT_SECONDS,
                result_ttl=settings.RESULT_TTL_SECONDS,
                failure_ttl=settings.RESULT_TTL_SECONDS,
                retry=CHAT_RETRY,
                # success: the worker wakes the waiters once RQ has recorded it
                # (FlowchatWorker.handle_job_success); a failure may be recorded by the sweep
                on_failure=Callback(notify_done),
                meta={"kind": "chat"},
            )
            reserved = False  # queued: the worker settles it
            return job
    except redis.RedisError as exc:
        if is_out_of_memory(exc):
            raise ChatRejected(503, REDIS_FULL, {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        raise ChatRejected(
            503, "the job queue (Redis) is unreachable; nothing was queued"
        ) from None
    finally:
        if reserved and quotas is not None:  # refused after the reservation: give it back
            with contextlib.suppress(redis.RedisError):
                quotas.release(key_id, reservation.tokens, reservation.stored_bytes)


def fetch_chat(connection: redis.Redis, job_id: str, owner: str) -> Job | None:
    """The chat job ``job_id`` if ``owner`` (a key id) created it; None for an unknown id and
    for another key's job alike (the caller answers both with the same 404)."""
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
    except (NoSuchJobError, ValueError, UnicodeError):
        return None
    if job.func_name != CHAT_JOB:
        return None
    created_by = str((job.kwargs or {}).get("key_id") or "")
    if not secrets.compare_digest(created_by.encode(), owner.encode()):
        return None
    return job


def fetch_chat_view(
    connection: redis.Redis, job_id: str, owner: str
) -> tuple[Job, ChatResponse] | None:
    """:func:`fetch_chat` and the job's view in one go: the fetch already read the job's status,
    so the view costs no second read of it (one Redis round trip and one thread hand-off fewer
    per ``GET``)."""
    job = fetch_chat(connection, job_id, owner)
    if job is None:
        return None
    return job, chat_view(job, refresh=False)


def chat_view(job: Job, *, refresh: bool = True) -> ChatResponse:
    """The job's view; ``refresh=False`` trusts the status the job was fetched with."""
    status = job.get_status(refresh=refresh)
    if status == JobStatus.FINISHED:
        result = ChatResult.model_validate(job.return_value())
        return ChatResponse(
            id=job.id,
            status="finished",
            answer=result.answer,
            sources=result.sources,
            timings=result.timings,
            usage=result.usage,
            conversation_id=result.conversation_id,
        )
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return ChatResponse(id=job.id, status="failed", error=chat_failure_reason(job))
    if status == JobStatus.STARTED:
        return ChatResponse(id=job.id, status="started")
    return ChatResponse(id=job.id, status="queued")


def _done(view: ChatResponse) -> bool:
    return view.status in ("finished", "failed")


def _longest_blpop(notifier: aioredis.Redis) -> float:
    """:data:`DONE_WAIT_SECONDS`, or :data:`BLPOP_SHARE` of the client's socket timeout when
    that is shorter (``REDIS_SOCKET_TIMEOUT_SECONDS``: the socket read must outlast the BLPOP)."""
    socket_timeout = notifier.connection_pool.connection_kwargs.get("socket_timeout")
    if socket_timeout is None:
        return DONE_WAIT_SECONDS
    return min(DONE_WAIT_SECONDS, BLPOP_SHARE * float(socket_timeout))


async def wait_for_chat(
    job: Job, seconds: float, notifier: aioredis.Redis, view: ChatResponse | None = None
) -> ChatResponse:
    """The job's view once it is finished or failed, or after ``seconds``; ``view``: the job's
    view as just read (:func:`fetch_chat_view`), else it is read first.

    The request sleeps in ``BLPOP`` on the job's done-list until the worker pushes to it (after
    RQ has recorded a success; a failure's callback runs just before RQ records it, so a woken
    waiter looks again for a few milliseconds), so an answer is returned within a few
    milliseconds of being stored, without polling Redis. Once the job is done it re-pushes the
    signal for other requests waiting on the same job.
    """
    deadline = time.monotonic() + seconds
    key = DONE_KEY.format(job.id)
    longest = _longest_blpop(notifier)
    while True:
        if view is None:
            view = await asyncio.to_thread(chat_view, job)
        remaining = deadline - time.monotonic()
        if _done(view) or remaining <= 0:
            return view
        view = None
        try:
            woke = await notifier.blpop([key], timeout=min(longest, max(remaining, 0.01)))
        except redis.TimeoutError:  # Redis answered late: read the job again
            continue
        if not woke:
            continue
        for _ in range(100):
            view = await asyncio.to_thread(chat_view, job)
            if _done(view):
                async with notifier.pipeline(transaction=False) as pipe:
                    pipe.rpush(key, "1")  # wake the other requests waiting on this job
                    pipe.expire(key, DONE_TTL_SECONDS)
                    await pipe.execute()
                return view
            await asyncio.sleep(0.002)
        # woken but not done: the job failed and RQ put it back in the queue (a retry)


def job_outcome(job: Job) -> tuple[str, dict] | None:
    """``("done", result)`` or ``("error", {"reason"})`` once the job has ended, else None
    (for :func:`app.chat.stream.follow`)."""
    view = chat_view(job)
    if view.status == "finished":
        return "done", ChatResult.model_validate(job.return_value()).model_dump(mode="json")
    if view.status == "failed":
        return "error", {"reason": view.error or "the answer could not be produced"}
    return None
