"""``POST /v1/chat/completions``: the service behind OpenAI's chat completions shape, so stock
OpenAI clients can use it. The last user message is the question; the answer's sources are
returned in the extra field ``sources`` of the response."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator

from app.api.chat import rejected
from app.api.dependencies import ApiKeyDep, ChatKeyDep, QueueDep, SettingsDep
from app.chat_jobs import ChatRejected, submit_chat, wait_for_chat
from app.rag.prompt import Source

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[ApiKeyDep])


MAX_MESSAGES = 50  # per request
MAX_MESSAGE_CONTENT_CHARS = 32_000  # per message (the question itself: MAX_MESSAGE_CHARS)
MAX_TOTAL_CONTENT_CHARS = 100_000  # all messages together (and MAX_REQUEST_BYTES for the body)


class OpenAIMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = Field(default=None, max_length=MAX_MESSAGE_CONTENT_CHARS)


class OpenAIRequest(BaseModel):
    model: str = Field(default="flowchat", max_length=200)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False

    @field_validator("messages")
    @classmethod
    def _bounded_total(cls, messages: list[OpenAIMessage]) -> list[OpenAIMessage]:
        total = sum(len(m.content or "") for m in messages)
        if total > MAX_TOTAL_CONTENT_CHARS:
            raise ValueError(
                f"the messages hold {total} characters; the limit is {MAX_TOTAL_CONTENT_CHARS}"
            )
        return messages


class OpenAIChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class OpenAIChoice(BaseModel):
    index: int = 0
    message: OpenAIChoiceMessage
    finish_reason: Literal["stop"] = "stop"


class OpenAIResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[OpenAIChoice]
    usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    sources: list[Source] = []


@router.post("/chat/completions", response_model=OpenAIResponse)
async def completions(
    body: OpenAIRequest,
    request: Request,
    settings: SettingsDep,
    queue: QueueDep,
    key_id: ChatKeyDep,
):
    if body.stream:
        raise HTTPException(400, "streaming is not supported: send 'stream': false")
    question = next((m.content or "" for m in reversed(body.messages) if m.role == "user"), None)
    if question is None:
        raise HTTPException(422, "no user message: the last user message is the question")
    try:
        job = await asyncio.to_thread(submit_chat, queue, settings, question, None, key_id=key_id)
    except ChatRejected as exc:
        raise rejected(exc, request) from None
    view = await wait_for_chat(job, float(settings.JOB_TIMEOUT_SECONDS), request.app.state.aioredis)
    if view.status == "failed":
        raise HTTPException(502, view.error or "the answer could not be produced")
    if view.status != "finished":
        raise HTTPException(
            504, f"no answer within {settings.JOB_TIMEOUT_SECONDS} s (job {job.id})"
        )
    return OpenAIResponse(
        id=f"chatcmpl-{job.id}",
        created=int(time.time()),
        model=body.model,
        choices=[OpenAIChoice(message=OpenAIChoiceMessage(content=view.answer or ""))],
        sources=view.sources,
    )
