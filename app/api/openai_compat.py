"""``/v1/chat/completions`` and ``/v1/models``: the service behind OpenAI's API shape, so stock
OpenAI clients (the official SDKs, Open WebUI, ...) can use it.

- The last user message is the question; the user and assistant messages before it are the
  conversation's history (the system prompt is the service's own; callers' system messages are
  ignored).
- ``stream: true`` relays the job's answer stream as ``chat.completion.chunk`` events, ending
  with ``data: [DONE]``; ``stream_options.include_usage`` adds the usage chunk, as OpenAI does.
- ``usage`` carries Flow's own token counts; the answer's sources come in the extra field
  ``sources`` (of the response, or of the last chunk when streaming).
- Every error, including those of the API-key check and request validation, has OpenAI's shape
  ``{"error": {"message", "type", "code"}}``, so the SDKs raise their typed exceptions
  (``AuthenticationError`` on 401, ``RateLimitError`` on 429, ...). As OpenAI does, a key that
  is not valid gets 401 here (the API-key check's 403 on ``/api``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.access.quotas import OpenSlots, Refusal
from app.api.chat import (
    NO_STORE,
    REDIS_DOWN,
    STREAM_PING_SECONDS,
    job_events,
    rejected,
    too_many_open,
)
from app.api.dependencies import ApiKeyDep, ChatKeyDep, QueueDep, SettingsDep
from app.api.models import NOT_BLANK, has_text
from app.api.openai_errors import openai_error
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.chat.jobs import ChatRejected, submit_chat, wait_for_chat
from app.chat.results import Turn, Usage
from app.rag.prompt import Source

MODEL_ID = "flowchat"


class OpenAIRoute(APIRoute):
    """Turns every error of a ``/v1`` route (dependencies included) into OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI raises Starlette's for a bad body
                status = exc.status_code
                if status == 403:  # OpenAI answers a wrong key with 401 (AuthenticationError)
                    status = 401
                return openai_error(status, str(exc.detail), dict(exc.headers or {}))
            except RequestValidationError as exc:
                problems = []
                for err in exc.errors():
                    where = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
                    problems.append(f"{where}: {err['msg']}")
                return openai_error(422, "; ".join(problems))

        return handle


router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    dependencies=[ApiKeyDep],
    route_class=OpenAIRoute,
    # app.api.openapi documents /v1's errors in OpenAI's shape (app.api.openai_errors)
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)

MAX_MESSAGES = 50  # per request
MAX_MESSAGE_CONTENT_CHARS = 4000  # per message or content part (the question: MAX_MESSAGE_CHARS)
MAX_CONTENT_PARTS = 20  # per message, together at most MAX_MESSAGE_CONTENT_CHARS
# so all messages together hold at most MAX_MESSAGES x MAX_MESSAGE_CONTENT_CHARS characters
MAX_TOTAL_CONTENT_CHARS = MAX_MESSAGES * MAX_MESSAGE_CONTENT_CHARS
# the schema says what the route needs: at least one user message with text (the question),
# as a string or as a text part
HAS_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "text": {"type": "string", "pattern": NOT_BLANK}},
    "required": ["type", "text"],
}
HAS_QUESTION = {
    "contains": {
        "type": "object",
        "properties": {
            "role": {"const": "user"},
            "content": {
                "anyOf": [
                    {"type": "string", "pattern": NOT_BLANK},
                    {"type": "array", "contains": HAS_TEXT_PART},
                ]
            },
        },
        "required": ["role", "content"],
    }
}


def _a_boolean(value: object) -> object:
    if not isinstance(value, bool):  # 0 == False in Python; in JSON 0 is no boolean
        raise ValueError("must be a JSON boolean")
    return value


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: str = Field(max_length=100)
    text: str | None = Field(default=None, max_length=MAX_MESSAGE_CONTENT_CHARS)


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: (
        Annotated[str, Field(max_length=MAX_MESSAGE_CONTENT_CHARS)]
        | Annotated[list[TextPart], Field(max_length=MAX_CONTENT_PARTS)]
        | None
    ) = None

    @model_validator(mode="after")
    def _bounded(self) -> OpenAIMessage:
        if isinstance(self.content, list):
            size = sum(len(p.text or "") for p in self.content)
            if size > MAX_MESSAGE_CONTENT_CHARS:
                raise ValueError(
                    f"a message's text parts hold {size} characters; the limit is "
                    f"{MAX_MESSAGE_CONTENT_CHARS}"
                )
        return self

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False

    _boolean = field_validator("include_usage", mode="before")(_a_boolean)


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: str = Field(default=MODEL_ID, max_length=200)
    messages: list[OpenAIMessage] = Field(
        min_length=1, max_length=MAX_MESSAGES, json_schema_extra=HAS_QUESTION
    )
    stream: bool = False
    stream_options: StreamOptions | None = None

    _boolean = field_validator("stream", mode="before")(_a_boolean)


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
    usage: Usage = Field(default_factory=Usage)
    sources: list[Source] = []


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "flowchat"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def split_messages(messages: list[OpenAIMessage]) -> tuple[str, list[Turn]]:
    """The question (the last user message with text) and the user/assistant messages before
    it."""
    last = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if messages[i].role == "user" and has_text(messages[i].text)
        ),
        None,
    )
    if last is None:
        raise HTTPException(422, "no user message: the last user message is the question")
    history = [
        Turn(role=m.role, content=m.text)  # type: ignore[arg-type]
        for m in messages[:last]
        if m.role in ("user", "assistant") and m.text
    ]
    return messages[last].text, history


@router.get("/models", response_model=ModelList)
def models() -> ModelList:
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.post(
    "/chat/completions",
    response_model=OpenAIResponse,
    responses={
        429: {},
        502: {},
        504: {},
        200: {
            "description": "the completion, or with `stream: true` its chunks as Server-Sent "
            "Events ending with `data: [DONE]`",
            "content": {"text/event-stream": {}},
        },
    },
)
async def completions(
    body: OpenAIRequest,
    request: Request,
    settings: SettingsDep,
    queue: QueueDep,
    key_id: ChatKeyDep,
    response_headers: Response,
):
    question, history = split_messages(body.messages)
    slots: OpenSlots = request.app.state.open_slots
    slot = await slots.acquire(key_id)  # the answer is streamed or waited for: a slot is held
    if isinstance(slot, Refusal):
        raise too_many_open(request, slot)
    try:
        try:
            job = await asyncio.to_thread(
                partial(
                    submit_chat,
                    queue,
                    settings,
                    question,
                    None,
                    history=history,  # bounded before the job is written
                    key_id=key_id,
                    quotas=request.app.state.quotas,
                )
            )
        except ChatRejected as exc:
            raise rejected(exc, request) from None
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = _chunks(request, job, body.model, created, include_usage, settings)
            response = EventSourceResponse(
                _released(chunks, slots, key_id, slot), ping=STREAM_PING_SECONDS, headers=NO_STORE
            )
            slot = None  # the stream releases it when it ends
            return response
        view = await wait_for_chat(
            job, float(settings.JOB_TIMEOUT_SECONDS), request.app.state.aioredis
        )
    finally:
        if slot is not None:
            await slots.release(key_id, slot)
    return _completion(view, job, created, body.model, settings, response_headers)


async def _released(
    chunks: AsyncIterator[ServerSentEvent], slots: OpenSlots, key_id: str, slot: str
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await slots.release(key_id, slot)


def _completion(
    view: Any, job: Any, created: int, model: str, settings: Any, response: Response
) -> OpenAIResponse:
    response.headers.update(NO_STORE)
    if view.status == "failed":
        raise HTTPException(502, view.error or "the answer could not be produced")
    if view.status != "finished":
        raise HTTPException(
            504, f"no answer within {settings.JOB_TIMEOUT_SECONDS} s (job {job.id})"
        )
    return OpenAIResponse(
        id=f"chatcmpl-{job.id}",
        created=created,
        model=model,
        choices=[OpenAIChoice(message=OpenAIChoiceMessage(content=view.answer or ""))],
        usage=view.usage or Usage(),
        sources=view.sources,
    )


async def _chunks(
    request: Request, job: Any, model: str, created: int, include_usage: bool, settings: Any
) -> AsyncIterator[ServerSentEvent]:
    base = {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> ServerSentEvent:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return ServerSentEvent(data=json.dumps({**base, "choices": [choice], **extra}))

    def error(message: str) -> ServerSentEvent:
        body = {"error": {"message": message, "type": "server_error", "code": 502}}
        return ServerSentEvent(data=json.dumps(body))

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for event in job_events(request, job, float(settings.JOB_TIMEOUT_SECONDS)):
            if event.type == "delta":
                yield chunk({"content": event.data})
            elif event.type == "reset":  # a retried job said something else: cannot retract
                yield error("the answer restarted after a worker failure and changed; ask again")
                return
            elif event.type == "error":
                yield error(str(event.data.get("reason", "the answer could not be produced")))
                return
            elif event.type == "done":
                yield chunk({}, "stop", sources=event.data.get("sources", []))
                if include_usage:
                    usage = Usage.model_validate(event.data.get("usage") or {})
                    payload = {**base, "choices": [], "usage": usage.model_dump()}
                    yield ServerSentEvent(data=json.dumps(payload))
                break
    except redis.RedisError:
        yield error(REDIS_DOWN)
        return
    yield ServerSentEvent(data="[DONE]")
