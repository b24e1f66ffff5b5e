"""Chat routes: submit a question (202 + job id), read, wait for or stream the answer, vote."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from rq.job import Job
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.access.quotas import REASON_QUEUE
from app.api.dependencies import ApiKeyDep, ChatKeyDep, QueueDep, RedisDep, SettingsDep
from app.api.models import ChatAccepted, ChatRequest, ChatResponse
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.chat import feedback
from app.chat.conversations import new_conversation_id
from app.chat.jobs import ChatRejected, fetch_chat, job_outcome, submit_chat, wait_for_chat
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


def rejected(exc: ChatRejected, request: Request | None = None) -> HTTPException:
    if exc.status == 429 and request is not None:  # the chat queue is full
        MetricsRecorder(request.app.state.redis).rate_limited(REASON_QUEUE)
    return HTTPException(exc.status, exc.reason, headers=exc.headers)


def not_found(job_id: str) -> HTTPException:
    return HTTPException(404, f"no chat job with id {job_id[:64]!r} (it may have expired)")


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
        )
    except ChatRejected as exc:
        raise rejected(exc, request) from None
    url = f"{CHAT_PATH}/{job.id}"
    response.headers["Location"] = url
    return ChatAccepted(
        id=job.id, status_url=url, stream_url=f"{url}/stream", conversation_id=conversation_id
    )


@router.get("/{job_id}", response_model=ChatResponse, responses={404: {}})
async def read(
    job_id: str,
    request: Request,
    connection: RedisDep,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the answer")] = 0,
):
    bind(job_id=job_id[:64])  # this request's lines join the job's (ops.logs --job)
    job = await asyncio.to_thread(fetch_chat, connection, job_id)
    if job is None:
        raise not_found(job_id)
    return await wait_for_chat(job, wait, request.app.state.aioredis)


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
        200: {
            "description": "Server-Sent Events from the start of the answer: `sources` (list), "
            "`delta` and `reset` ({text}), then `done` (the stored result) or `error` "
            "({reason})",
            "content": {"text/event-stream": {}},
        },
    },
)
async def stream(job_id: str, request: Request, connection: RedisDep, settings: SettingsDep):
    bind(job_id=job_id[:64])  # this request's lines join the job's (ops.logs --job)
    job = await asyncio.to_thread(fetch_chat, connection, job_id)
    if job is None:
        raise not_found(job_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in job_events(request, job, float(settings.JOB_TIMEOUT_SECONDS)):
                yield _sse(event)
        except redis.RedisError:
            yield _sse(StreamEvent("error", {"reason": REDIS_DOWN}))

    return EventSourceResponse(
        events(), ping=STREAM_PING_SECONDS, headers={"Cache-Control": "no-store"}
    )


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
def vote(job_id: str, body: FeedbackRequest, connection: RedisDep) -> FeedbackAccepted:
    job = fetch_chat(connection, job_id)
    if job is None:
        raise not_found(job_id)
    # the stream's `done` event is written just before RQ stores the result: a vote sent
    # right after it waits a moment for the job to be recorded as finished
    for _ in range(VOTE_SETTLE_POLLS):
        if job.get_status(refresh=True) == "finished":
            break
        time.sleep(0.05)
    else:
        raise HTTPException(409, "the answer is not finished yet: vote once it is")
    result = ChatResult.model_validate(job.return_value())
    entry = feedback.FeedbackRecord(
        job_id=job.id,
        vote=body.vote,
        comment=body.comment,
        question=str(job.kwargs.get("question", "")),
        answer=result.answer,
        documents=[s.document for s in result.sources],
    )
    if feedback.record(connection, entry):
        MetricsRecorder(connection).feedback(body.vote)
    return FeedbackAccepted(id=job.id, vote=body.vote)
