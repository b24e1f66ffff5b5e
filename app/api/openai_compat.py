"""``POST /v1/chat/completions``: the service behind OpenAI's chat completions shape, so stock
OpenAI clients can use it. The last user message is the question; the answer's sources are
returned in the extra field ``sources`` of the response."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.chat import rejected
from app.api.dependencies import ApiKeyDep, ChatKeyDep, QueueDep, SettingsDep
from app.api.models import NOT_BLANK, has_text
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.chat_jobs import ChatRejected, submit_chat, wait_for_chat
from app.rag.prompt import Source

router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    dependencies=[ApiKeyDep],
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)


MAX_MESSAGES = 50  # per request
MAX_MESSAGE_CONTENT_CHARS = 4000  # per message (the question itself: MAX_MESSAGE_CHARS)
# so all messages together hold at most MAX_MESSAGES x MAX_MESSAGE_CONTENT_CHARS characters
MAX_TOTAL_CONTENT_CHARS = MAX_MESSAGES * MAX_MESSAGE_CONTENT_CHARS
# the schema says what the route needs: at least one user message with text (the question)
HAS_QUESTION = {
    "contains": {
        "type": "object",
        "properties": {
            "role": {"const": "user"},
            "content": {"type": "string", "pattern": NOT_BLANK},
        },
        "required": ["role", "content"],
    }
}


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(strict=True)

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = Field(default=None, max_length=MAX_MESSAGE_CONTENT_CHARS)


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    model: str = Field(default="flowchat", max_length=200)
    messages: list[OpenAIMessage] = Field(
        min_length=1, max_length=MAX_MESSAGES, json_schema_extra=HAS_QUESTION
    )
    stream: Literal[False] = Field(default=False, description="streaming is not supported yet")

    @field_validator("stream", mode="before")
    @classmethod
    def _a_boolean(cls, value: object) -> object:
        if not isinstance(value, bool):  # 0 == False in Python; in JSON 0 is no boolean
            raise ValueError("must be a JSON boolean")
        return value


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


@router.post(
    "/chat/completions", response_model=OpenAIResponse, responses={429: {}, 502: {}, 504: {}}
)
async def completions(
    body: OpenAIRequest,
    request: Request,
    settings: SettingsDep,
    queue: QueueDep,
    key_id: ChatKeyDep,
):
    asked = (m.content for m in reversed(body.messages) if m.role == "user")
    question = next((text for text in asked if has_text(text)), None)
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
