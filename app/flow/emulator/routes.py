"""The emulator's HTTP app: Flow's contract routes (token, chat completions, streamed or not)
with the faults the state injects, and the ``/_emulator`` admin routes."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from app.flow.client import CHAT_PATH, TOKEN_PATH
from app.flow.emulator.answers import answer_messages
from app.flow.emulator.config import CallKind, ConfigUpdate, EmulatorConfig, EmulatorStats
from app.flow.emulator.state import EmulatorState
from app.flow.models import ChatCompletionRequest, TokenRequest
from app.flow.token_estimate import estimate_prompt_tokens, estimate_tokens


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _words(text: str) -> int:
    return len(text.split())


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}},
        status_code=status,
        headers=dict(headers or {}),
    )


def _completion(request: ChatCompletionRequest) -> dict[str, Any]:
    answer = answer_messages(request.messages)
    finish_reason = "stop"
    if request.max_tokens is not None and _words(answer) > request.max_tokens:
        answer = " ".join(answer.split()[: request.max_tokens])
        finish_reason = "length"
    prompt_tokens = estimate_prompt_tokens(m.content for m in request.messages)
    completion_tokens = estimate_tokens(answer)
    return {
        "id": f"chatcmpl-emu-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


_STREAM_TOKEN = re.compile(r"\s*\S+")


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _stream(completion: dict[str, Any], request: ChatCompletionRequest, state: EmulatorState):
    """The completion as OpenAI's SSE chunks: one per word, ``token_latency_ms`` apart."""
    cfg = state.config
    answer = completion["choices"][0]["message"]["content"]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    async def events() -> Any:
        yield chunk({"role": "assistant", "content": ""})
        for n, token in enumerate(_STREAM_TOKEN.findall(answer), start=1):
            if cfg.stream_fail_after and n > cfg.stream_fail_after:
                yield _sse(
                    {
                        "error": {
                            "message": "upstream model failed mid-stream (emulated)",
                            "type": "server_error",
                        }
                    }
                )
                return
            if n > 1 and cfg.token_latency_ms:
                await asyncio.sleep(cfg.token_latency_ms / 1000)
            yield chunk({"content": token})
        yield chunk({}, completion["choices"][0]["finish_reason"])
        if request.stream_options and request.stream_options.get("include_usage"):
            yield _sse({**base, "choices": [], "usage": completion["usage"]})
        yield _sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream")


def _contract_router(state: EmulatorState) -> APIRouter:
    router = APIRouter()

    def reply(kind: CallKind, response: JSONResponse) -> JSONResponse:
        state.record(kind, response.status_code)
        return response

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        state.count_call("token")
        cfg = state.config
        try:
            body = TokenRequest.model_validate_json(await request.body())
        except ValidationError:
            return reply(
                "token",
                _error(
                    400, "malformed body: expected JSON with clientId, clientSecret, appToAccess"
                ),
            )
        tenant = request.headers.get("FlowTenant", "")
        valid = (
            _same(tenant, cfg.tenant)
            & _same(body.client_id, cfg.client_id)
            & _same(body.client_secret.get_secret_value(), cfg.client_secret.get_secret_value())
        )
        if not valid:
            return reply("token", _error(401, "invalid client credentials or tenant"))
        if body.app_to_access != cfg.app_to_access:
            return reply("token", _error(403, "client may not access the requested app"))
        access_token, lifetime = state.issue_token(body.client_id, tenant)
        expires_in: float | int = int(lifetime) if float(lifetime).is_integer() else lifetime
        return reply(
            "token",
            JSONResponse(
                {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}
            ),
        )

    @router.post(CHAT_PATH)
    async def chat(request: Request) -> JSONResponse:
        state.count_call("chat")
        with state.in_flight():
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return reply("chat", _error(401, "missing bearer token"))
            issued = state.lookup(token.strip())
            if issued is None:
                return reply("chat", _error(401, "unknown or expired token"))
            tenant = request.headers.get("FlowTenant")
            if not tenant:
                return reply("chat", _error(401, "missing FlowTenant header"))
            if not _same(tenant, issued.tenant):
                return reply("chat", _error(403, "FlowTenant does not match the token"))
            if not _same(request.headers.get("FlowAgent", ""), issued.client_id):
                return reply("chat", _error(403, "FlowAgent does not match the token's client"))
            latency = state.config.latency_ms
            if latency:
                await asyncio.sleep(latency / 1000)
            fault = state.next_fault()
            if fault is not None:
                return reply("chat", _error(fault.status, fault.message, fault.headers))
            try:
                payload = json.loads(await request.body())
            except ValueError:
                return reply("chat", _error(400, "body is not valid JSON"))
            try:
                body = ChatCompletionRequest.model_validate(payload)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                return reply("chat", _error(422, f"invalid chat request: {problems}"))
            completion = _completion(body)
            if body.stream and state.config.streaming:
                return reply("chat", _stream(completion, body, state))
            return reply("chat", JSONResponse(completion))

    return router


def _admin_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix="/_emulator", tags=["emulator admin"])

    @router.post("/config")
    async def configure(change: ConfigUpdate) -> dict[str, Any]:
        config = state.update(change)
        return {"config": config.model_dump(mode="json")}

    @router.get("/config")
    async def current() -> dict[str, Any]:
        return {"config": state.config.model_dump(mode="json")}

    @router.get("/stats")
    async def stats() -> EmulatorStats:
        return state.stats()

    return router


def create_app(
    config: EmulatorConfig | None = None, *, state: EmulatorState | None = None
) -> FastAPI:
    """The emulator's ASGI app: Flow's contract routes plus the ``/_emulator`` admin routes."""
    state = state or EmulatorState(config or EmulatorConfig())
    app = FastAPI(title="Flow emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = state
    app.include_router(_contract_router(state))
    app.include_router(_admin_router(state))
    return app
