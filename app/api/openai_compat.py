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
from typing import Any, Literal

import redis
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.chat import REDIS_DOWN, STREAM_PING_SECONDS, job_events, rejected
from app.api.dependencies import ApiKeyDep, QueueDep, SettingsDep
from app.chat.jobs import ChatRejected, submit_chat, wait_for_chat
from app.chat.results import Turn, Usage
from app.rag.prompt import Source

MODEL_ID = "flowchat"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIRoute(APIRoute):
    """Turns every error of a ``/v1`` route (dependencies included) into OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
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


router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[ApiKeyDep], route_class=OpenAIRoute)

ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "example": {"error": {"message": "...", "type": "invalid_request_error", "code": 422}}
        }
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, **ERROR_SCHEMA}
    for status, description in {
        401: "an API key is required, or the one sent is not valid",
        422: "the request is not a valid chat completion request",
        429: "the chat queue is full; retry after Retry-After seconds",
        502: "the answer could not be produced (Flow failed)",
        503: REDIS_DOWN,
        504: "no answer within the job timeout",
    }.items()
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = MODEL_ID
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


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
    """The question (the last user message) and the user/assistant messages before it."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise HTTPException(422, "no user message: the last user message is the question")
    history = [
        Turn(role=m.role, content=m.text)  # type: ignore[arg-type]
        for m in messages[:last]
        if m.role in ("user", "assistant") and m.text
    ]
    return messages[last].text, history


@router.get("/models", response_model=ModelList, responses={401: ERRORS[401]})
def models() -> ModelList:
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.post(
    "/chat/completions",
    response_model=OpenAIResponse,
    responses={
        **ERRORS,
        200: {
            "description": "the completion, or with `stream: true` its chunks as Server-Sent "
            "Events ending with `data: [DONE]`",
            "content": {"text/event-stream": {}},
        },
    },
)
async def completions(
    body: OpenAIRequest, request: Request, settings: SettingsDep, queue: QueueDep
):
    question, history = split_messages(body.messages)
    try:
        job = await asyncio.to_thread(submit_chat, queue, settings, question, None, history=history)
    except ChatRejected as exc:
        raise rejected(exc) from None
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _chunks(request, job, body.model, created, include_usage, settings)
        return EventSourceResponse(chunks, ping=STREAM_PING_SECONDS)
    try:
        view = await wait_for_chat(
            job, float(settings.JOB_TIMEOUT_SECONDS), request.app.state.aioredis
        )
    except redis.RedisError:
        raise HTTPException(503, REDIS_DOWN) from None
    if view.status == "failed":
        raise HTTPException(502, view.error or "the answer could not be produced")
    if view.status != "finished":
        raise HTTPException(
            504, f"no answer within {settings.JOB_TIMEOUT_SECONDS} s (job {job.id})"
        )
    return OpenAIResponse(
        id=f"chatcmpl-{job.id}",
        created=created,
        model=body.model,
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
