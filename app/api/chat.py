"""Chat routes: submit a question (202 + job id), read or wait for the answer."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from app.api.dependencies import ApiKeyDep, QueueDep, RedisDep, SettingsDep
from app.api.models import ChatAccepted, ChatRequest, ChatResponse
from app.chat_jobs import QueueFull, enqueue_chat, fetch_chat, wait_for_chat
from app.contracts import CHAT_PATH

router = APIRouter(prefix=CHAT_PATH, tags=["chat"], dependencies=[ApiKeyDep])

RETRY_AFTER_SECONDS = 5


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ChatAccepted)
def submit(body: ChatRequest, response: Response, settings: SettingsDep, queue: QueueDep):
    message = body.message.strip()
    if not message:
        raise HTTPException(422, "message is empty: send the question in 'message'")
    if len(message) > settings.MAX_MESSAGE_CHARS:
        raise HTTPException(
            422,
            f"message is {len(message)} characters long; the limit is "
            f"{settings.MAX_MESSAGE_CHARS} (MAX_MESSAGE_CHARS)",
        )
    try:
        job = enqueue_chat(queue, settings, message, body.top_k)
    except QueueFull as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except redis.RedisError:
        raise HTTPException(
            503, "the job queue (Redis) is unreachable; nothing was queued"
        ) from None
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
    job = fetch_chat(connection, job_id)
    if job is None:
        raise HTTPException(404, f"no chat job with id {job_id!r} (it may have expired)")
    return await wait_for_chat(job, wait, request.app.state.aioredis)
