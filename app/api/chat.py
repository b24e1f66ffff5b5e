"""Chat routes: submit a question (202 + job id), read, wait for or stream the answer, vote."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from rq.job import Job
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.access.quotas import REASON_QUEUE, OpenSlots, Refusal
from app.api.dependencies import ApiKeyDep, ChatKeyDep, KeyIdDep, QueueDep, SettingsDep
from app.api.models import ChatAccepted, ChatRequest, ChatResponse
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.chat import feedback
from app.chat.conversations import new_conversation_id
from app.chat.jobs import (
    ChatRejected,
    fetch_chat,
    fetch_chat_view,
    job_outcome,
    submit_chat,
    wait_for_chat,
)
from app.chat.results import ChatResult
from app.chat.stream import StreamEvent, follow
from app.contracts import CHAT_PATH
from app.observability.logs import bind
from app.observability.metrics import MetricsRecorder

router = APIRouter(
    prefix=CHAT_PATH,
    tags=["chat"],
    dependencies=[ApiKeyDep],
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)

REDIS_DOWN = "the job queue (Redis) is unreachable"
STREAM_PING_SECONDS = 15  # SSE comment lines keep proxies from closing a quiet stream
VOTE_SETTLE_POLLS = 40  # x 50 ms


NO_STORE = {"Cache-Control": "no-store"}  # chat results and streams are one key's, not shared


def rejected(exc: ChatRejected, request: Request | None = None) -> HTTPException:
    if exc.status == 429 and request is not None:  # a per-key limit, or the chat queue is full
        MetricsRecorder(request.app.state.redis).rate_limited(exc.limit or REASON_QUEUE)
    return HTTPException(exc.status, exc.reason, headers=exc.headers)


def not_found(job_id: str) -> HTTPException:
    """The one answer for an unknown id and for another key's job (same status, same body)."""
    return HTTPException(404, f"no chat job with id {job_id[:64]!r} (it may have expired)")


def too_many_open(request: Request, refusal: Refusal) -> HTTPException:
    MetricsRecorder(request.app.state.redis).rate_limited(refusal.reason)
    return HTTPException(429, refusal.detail, headers={"Retry-After": str(refusal.retry_after)})


async def owned_chat(request: Request, job_id: str, key_id: str) -> Job:
    """The caller's chat job, or the 404 an unknown id gets."""
    job = await asyncio.to_thread(fetch_chat, request.app.state.redis, job_id, key_id)
    if job is None:
        raise not_found(job_id)
    return job


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted, responses={429: {}}
)
def submit(
    body: ChatRequest,
    request: Request,
    response: Response,
    settings: SettingsDep,
    queue: QueueDep,
    key_id: ChatKeyDep,
):
    conversation_id = body.conversation_id or new_conversation_id()
    try:
        job = submit_chat(
            queue,
            settings,
            body.message,
            body.top_k,
            conversation_id=conversation_id,
            key_id=key_id,
            quotas=request.app.state.quotas,
        )
    except ChatRejected as exc:
        raise rejected(exc, request) from None
    url = f"{CHAT_PATH}/{job.id}"
    response.headers["Location"] = url
    return ChatAccepted(
        id=job.id, status_url=url, stream_url=f"{url}/stream", conversation_id=conversation_id
    )


@router.get("/{job_id}", response_model=ChatResponse, responses={404: {}, 429: {}})
async def read(
    job_id: str,
    request: Request,
    response: Response,
    key_id: KeyIdDep,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the answer")] = 0,
):
    bind(job_id=job_id[:64])  # this request's lines join the job's (ops.logs --job)
    found = await asyncio.to_thread(fetch_chat_view, request.app.state.redis, job_id, key_id)
    if found is None:
        raise not_found(job_id)
    job, view = found
    response.headers.update(NO_STORE)
    if wait <= 0 or view.status in ("finished", "failed"):
        return view
    slots: OpenSlots = request.app.state.open_slots
    async with slots.held(key_id) as refusal:
        if refusal is not None:
            raise too_many_open(request, refusal)
        return await wait_for_chat(job, wait, request.app.state.aioredis, view)


async def job_events(request: Request, job: Job, deadline: float) -> AsyncIterator[StreamEvent]:
    """The job's answer events from the start (shared with the OpenAI-compatible route)."""

    async def outcome() -> tuple[str, Any] | None:
        return await asyncio.to_thread(job_outcome, job)

    async for event in follow(request.app.state.aioredis, job.id, outcome, deadline):
        yield event


def _sse(event: StreamEvent) -> ServerSentEvent:
    data = {"text": event.data} if event.type in ("delta", "reset") else event.data
    return ServerSentEvent(data=json.dumps(data), event=event.type)


@router.get(
    "/{job_id}/stream",
    responses={
        404: {},
        429: {},
        200: {
            "description": "Server-Sent Events from the start of the answer: `sources` (list), "
            "`delta` and `reset` ({text}), then `done` (the stored result) or `error` "
            "({reason})",
            "content": {"text/event-stream": {}},
        },
    },
)
async def stream(job_id: str, request: Request, settings: SettingsDep, key_id: KeyIdDep):
    bind(job_id=job_id[:64])  # this request's lines join the job's (ops.logs --job)
    job = await owned_chat(request, job_id, key_id)
    slots: OpenSlots = request.app.state.open_slots
    slot = await slots.acquire(key_id)
    if isinstance(slot, Refusal):
        raise too_many_open(request, slot)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in job_events(request, job, float(settings.JOB_TIMEOUT_SECONDS)):
                yield _sse(event)
        except redis.RedisError:
            yield _sse(StreamEvent("error", {"reason": REDIS_DOWN}))
        finally:
            await slots.release(key_id, slot)

    return EventSourceResponse(events(), ping=STREAM_PING_SECONDS, headers=NO_STORE)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vote: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=feedback.COMMENT_MAX_CHARS)


class FeedbackAccepted(BaseModel):
    id: str
    vote: Literal["up", "down"]


@router.post(
    "/{job_id}/feedback",
    response_model=FeedbackAccepted,
    responses={404: {}, 409: {}},
)
async def vote(
    job_id: str, body: FeedbackRequest, request: Request, key_id: KeyIdDep
) -> FeedbackAccepted:
    """Async: the wait for a just-finished job to be recorded sleeps on the event loop, never in
    the thread pool that chat submissions and readiness share."""
    connection: redis.Redis = request.app.state.redis
    job = await owned_chat(request, job_id, key_id)
    # the stream's `done` event is written just before RQ stores the result: a vote sent
    # right after it waits a moment for the job to be recorded as finished
    for _ in range(VOTE_SETTLE_POLLS):
        if await asyncio.to_thread(job.get_status, refresh=True) == "finished":
            break
        await asyncio.sleep(0.05)
    else:
        raise HTTPException(409, "the answer is not finished yet: vote once it is")

    def store() -> bool:
        result = ChatResult.model_validate(job.return_value())
        entry = feedback.FeedbackRecord(
            job_id=job.id,
            key_id=key_id,
            vote=body.vote,
            comment=body.comment,
            question=str(job.kwargs.get("question", "")),
            answer=result.answer,
            documents=[s.document for s in result.sources],
        )
        return feedback.record(connection, entry)

    if await asyncio.to_thread(store):
        await asyncio.to_thread(MetricsRecorder(connection).feedback, body.vote)
    return FeedbackAccepted(id=job.id, vote=body.vote)
