"""Chat routes: submit a question (202 + job id), read or wait for the answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

import redis
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from app.api.dependencies import ApiKeyDep, QueueDep, RedisDep, SettingsDep
from app.api.models import ChatAccepted, ChatRequest, ChatResponse
from app.chat_jobs import ChatRejected, fetch_chat, submit_chat, wait_for_chat
from app.contracts import CHAT_PATH
from app.logging_setup import bind

router = APIRouter(prefix=CHAT_PATH, tags=["chat"], dependencies=[ApiKeyDep])

REDIS_DOWN = "the job queue (Redis) is unreachable"


def rejected(exc: ChatRejected) -> HTTPException:
    return HTTPException(exc.status, exc.reason, headers=exc.headers)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def submit(body: ChatRequest, response: Response, settings: SettingsDep, queue: QueueDep):
    try:
        job = submit_chat(queue, settings, body.message, body.top_k)
    except ChatRejected as exc:
        raise rejected(exc) from None
    url = f"{CHAT_PATH}/{job.id}"
    response.headers["Location"] = url
    return ChatAccepted(id=job.id, status_url=url)


@router.get("/{job_id}", response_model=ChatResponse)
async def read(
    job_id: str,
    request: Request,
    connection: RedisDep,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the answer")] = 0,
):
    bind(job_id=job_id[:64])  # this request's lines join the job's (ops.logs --job)
    try:
        job = await asyncio.to_thread(fetch_chat, connection, job_id)
        if job is None:
            raise HTTPException(404, f"no chat job with id {job_id[:64]!r} (it may have expired)")
        return await wait_for_chat(job, wait, request.app.state.aioredis)
    except redis.RedisError:
        raise HTTPException(503, REDIS_DOWN) from None
