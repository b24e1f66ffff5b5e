"""Chat routes: submit a question (202 + job id), read or wait for the answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from app.api.dependencies import ApiKeyDep, ChatKeyDep, QueueDep, RedisDep, SettingsDep
from app.api.models import ChatAccepted, ChatRequest, ChatResponse
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.chat_jobs import ChatRejected, fetch_chat, submit_chat, wait_for_chat
from app.contracts import CHAT_PATH
from app.metrics import MetricsRecorder
from app.quotas import REASON_QUEUE

router = APIRouter(
    prefix=CHAT_PATH,
    tags=["chat"],
    dependencies=[ApiKeyDep],
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)


def rejected(exc: ChatRejected, request: Request | None = None) -> HTTPException:
    if exc.status == 429 and request is not None:  # the chat queue is full
        MetricsRecorder(request.app.state.redis).rate_limited(REASON_QUEUE)
    return HTTPException(exc.status, exc.reason, headers=exc.headers)


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
    try:
        job = submit_chat(queue, settings, body.message, body.top_k, key_id=key_id)
    except ChatRejected as exc:
        raise rejected(exc, request) from None
    url = f"{CHAT_PATH}/{job.id}"
    response.headers["Location"] = url
    return ChatAccepted(id=job.id, status_url=url)


@router.get("/{job_id}", response_model=ChatResponse, responses={404: {}})
async def read(
    job_id: str,
    request: Request,
    connection: RedisDep,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the answer")] = 0,
):
    job = await asyncio.to_thread(fetch_chat, connection, job_id)
    if job is None:
        raise HTTPException(404, f"no chat job with id {job_id[:64]!r} (it may have expired)")
    return await wait_for_chat(job, wait, request.app.state.aioredis)
