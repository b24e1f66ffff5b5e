"""A local stand-in for the CI&T Flow gateway, speaking the same HTTP contract.

Run it with ``python -m app.flow.emulator [--port 8010] ...`` (``--help`` lists the knobs), or in
process with :func:`run_emulator` (tests). It checks credentials, tenant, agent and tokens the way
Flow does, answers extractively from the numbered sources in the prompt (see
:func:`answer_prompt`), and can inject latency, 500s and 429s. Admin routes under ``/_emulator``
(``POST /_emulator/config``, ``GET /_emulator/stats``) belong to the emulator only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import json
import os
import random
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from app.contracts import REFUSAL_ANSWER
from app.flow.client import CHAT_PATH, TOKEN_PATH
from app.flow.emulator_context import earlier_user_turns, sentence_score
from app.flow.emulator_judge import judge_reply
from app.flow.models import ChatCompletionRequest, ChatMessage, TokenRequest
from app.flow.token_estimate import estimate_prompt_tokens, estimate_tokens
from app.logging_setup import configure_logging

DEFAULT_CLIENT_ID = "flowchat-local"
DEFAULT_CLIENT_SECRET = "flowchat-local-secret"  # a development default
DEFAULT_TENANT = "flowchat-local"
NOT_FOUND_ANSWER = REFUSAL_ANSWER
MAX_ANSWER_SENTENCES = 3

CallKind = Literal["token", "chat"]


# --- configuration ------------------------------------------------------------------------------


class EmulatorConfig(BaseModel):
    """The emulator's knobs (CLI flags map 1:1 onto these fields)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8010, ge=0, le=65535)
    client_id: str = Field(default=DEFAULT_CLIENT_ID, min_length=1)
    client_secret: SecretStr = SecretStr(DEFAULT_CLIENT_SECRET)
    tenant: str = Field(default=DEFAULT_TENANT, min_length=1)
    app_to_access: str = "llm-api"
    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    token_lifetime: float = Field(default=3600.0, gt=0)
    seed: int | None = None
    # streaming (``stream: true``): delay between streamed tokens; break off with an error event
    # after this many tokens (0 = never); streaming=False answers streaming requests with one
    # JSON completion, like a gateway that does not stream
    token_latency_ms: float = Field(default=0.0, ge=0)
    stream_fail_after: int = Field(default=0, ge=0)
    streaming: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EmulatorConfig:
        """Credentials from FLOW_AGENT / FLOW_AGENT_SECRET / FLOW_TENANT when set."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in (
            ("client_id", "FLOW_AGENT"),
            ("client_secret", "FLOW_AGENT_SECRET"),
            ("tenant", "FLOW_TENANT"),
        ):
            if env.get(var):
                values[field] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class ConfigUpdate(BaseModel):
    """Body of ``POST /_emulator/config``: a partial update plus one-shot fault controls."""

    model_config = ConfigDict(extra="forbid")

    client_id: str | None = Field(default=None, min_length=1)
    client_secret: SecretStr | None = None
    tenant: str | None = Field(default=None, min_length=1)
    app_to_access: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    rate_limit_rate: float | None = Field(default=None, ge=0, le=1)
    token_lifetime: float | None = Field(default=None, gt=0)
    seed: int | None = None
    token_latency_ms: float | None = Field(default=None, ge=0)
    stream_fail_after: int | None = Field(default=None, ge=0)
    streaming: bool | None = None
    fail_next: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=400, le=599)
    expire_tokens: bool = False


class EmulatorStats(BaseModel):
    """Counters since start: calls per endpoint and responses per status code."""

    token_calls: int = 0
    chat_calls: int = 0
    in_flight: int = 0
    tokens_issued: int = 0
    token_responses: dict[str, int] = Field(default_factory=dict)
    chat_responses: dict[str, int] = Field(default_factory=dict)


# --- state --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Issued:
    client_id: str
    tenant: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class _Fault:
    status: int
    message: str
    headers: dict[str, str]


class EmulatorState:
    """Config, issued tokens, pending faults and counters; safe to read from other threads."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)
        self._tokens: dict[str, _Issued] = {}
        self._fail_next = 0
        self._fail_status = 500
        self._stats = EmulatorStats()

    def update(self, change: ConfigUpdate) -> EmulatorConfig:
        knobs = change.model_dump(
            exclude_unset=True, exclude={"fail_next", "fail_status", "expire_tokens"}
        )
        with self._lock:
            if knobs:
                merged = {**self.config.model_dump(), **knobs}
                self.config = EmulatorConfig.model_validate(merged)
                if "seed" in knobs:
                    self._rng = random.Random(self.config.seed)
            if change.fail_status is not None:
                self._fail_status = change.fail_status
            if change.fail_next is not None:
                self._fail_next = change.fail_next
            if change.expire_tokens:
                self._tokens.clear()
            return self.config

    def issue_token(self, client_id: str, tenant: str) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            lifetime = self.config.token_lifetime
            self._tokens[token] = _Issued(client_id, tenant, time.monotonic() + lifetime)
            self._stats.tokens_issued += 1
        return token, lifetime

    def lookup(self, token: str) -> _Issued | None:
        with self._lock:
            issued = self._tokens.get(token)
            if issued is not None and issued.expires_at <= time.monotonic():
                del self._tokens[token]
                return None
            return issued

    def issued_tokens(self) -> list[str]:
        """Tokens currently valid (for tests that check nothing leaks)."""
        with self._lock:
            now = time.monotonic()
            return [t for t, i in self._tokens.items() if i.expires_at > now]

    def next_fault(self) -> _Fault | None:
        with self._lock:
            cfg = self.config
            if self._fail_next > 0:
                self._fail_next -= 1
                status = self._fail_status
                headers = {"Retry-After": "1"} if status == 429 else {}
                return _Fault(status, "injected failure (fail_next)", headers)
            if cfg.rate_limit_rate and self._rng.random() < cfg.rate_limit_rate:
                return _Fault(429, "rate limit exceeded (emulated)", {"Retry-After": "1"})
            if cfg.error_rate and self._rng.random() < cfg.error_rate:
                return _Fault(500, "internal error (emulated)", {})
            return None

    def count_call(self, kind: CallKind) -> None:
        with self._lock:
            if kind == "token":
                self._stats.token_calls += 1
            else:
                self._stats.chat_calls += 1

    def record(self, kind: CallKind, status: int) -> None:
        with self._lock:
            by_status = (
                self._stats.token_responses if kind == "token" else self._stats.chat_responses
            )
            by_status[str(status)] = by_status.get(str(status), 0) + 1

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._lock:
            self._stats.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    def stats(self) -> EmulatorStats:
        with self._lock:
            return self._stats.model_copy(deep=True)


# --- extractive answers -------------------------------------------------------------------------

_SOURCE_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+>]|#{1,6}|\d+[.)])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS_TEXT = """
a an the is are was were be been being to of in on for and or but how what when where why who whom
which do does did doing i you he she we they it its this that these those with as at by from can
could should would will shall may might must my your our their me us them if then there here so than
too very just about into onto over under up down out any all some such have has had having get gets
got please tell explain give show want need know
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True)
class Source:
    n: int
    title: str
    text: str


@dataclass(frozen=True)
class _Candidate:
    score: int
    title_score: int
    n: int
    position: int
    text: str


def _terms(text: str) -> set[str]:
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        terms.add(word)
    return terms


_SOURCE_BLOCK = re.compile(r'<source n="(\d+)" label="([^"]*)">\n(.*?)\n</source>', re.S)
_QUESTION_BLOCK = re.compile(r"<question>\n(.*?)\n</question>", re.S)


def parse_prompt(text: str) -> tuple[list[Source], str | None]:
    """Split a prompt into its numbered sources and the question (None when it has none).
    Reads the delimited format of ``app.rag.prompt`` (escaped text inside ``<source>`` and
    ``<question>`` blocks), or the plain ``[n] label`` / ``Question:`` form of older prompts."""
    asked = _QUESTION_BLOCK.search(text)
    if asked is not None:
        blocks = _SOURCE_BLOCK.findall(text[: asked.start()])
        sources = [
            Source(int(n), html.unescape(label), html.unescape(body).strip())
            for n, label, body in blocks
        ]
        return sources, html.unescape(asked.group(1)).strip()
    body, marker, question = text.rpartition("Question:")
    if not marker:
        body, question_or_none = text, None
    else:
        question_or_none = question.strip()
    sources: list[Source] = []
    current: tuple[int, str] | None = None
    lines: list[str] = []
    for line in body.splitlines():
        match = _SOURCE_LINE.match(line.strip())
        if match:
            if current is not None:
                sources.append(Source(current[0], current[1], "\n".join(lines).strip()))
            current, lines = (int(match.group(1)), match.group(2).strip()), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sources.append(Source(current[0], current[1], "\n".join(lines).strip()))
    return sources, question_or_none


def _sentences(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if _WORD.search(sentence.lower()):
                yield sentence


def answer_prompt(text: str, earlier: Sequence[str] = ()) -> str:
    """Extractive answer: the 1-3 source sentences sharing most words with the question (and
    the ``earlier`` user turns of its conversation, :mod:`app.flow.emulator_context`), each
    followed by its citation ``[n]``. Deterministic for the same input."""
    sources, question = parse_prompt(text)
    if question is None and not sources and "Sources:" not in text:
        snippet = " ".join(text.split())[:200]
        if not snippet:
            return "This is the Flow emulator; your message was empty."
        return f'This is the Flow emulator. You wrote: "{snippet}"'
    wanted = _terms(question if question is not None else text)
    context = _terms(" ".join(earlier))
    if not (wanted or context) or not sources:
        return NOT_FOUND_ANSWER
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for source in sources:
        title_score = len(wanted & _terms(source.title))
        for position, sentence in enumerate(_sentences(source.text)):
            score = sentence_score(wanted, context, _terms(sentence))
            if score and sentence not in seen:
                seen.add(sentence)
                candidates.append(_Candidate(score, title_score, source.n, position, sentence))
    if not candidates:
        return NOT_FOUND_ANSWER
    candidates.sort(key=lambda c: (-c.score, -c.title_score, c.n, c.position))
    best = candidates[0].score
    chosen = [c for c in candidates[:MAX_ANSWER_SENTENCES] if 2 * c.score >= best]
    return " ".join(f"{c.text} [{c.n}]" for c in chosen)


def answer_messages(messages: Sequence[ChatMessage]) -> str:
    """Answer the last user message (or the last message when no user spoke)."""
    judged = judge_reply(messages)  # ops.evaluate's judge requests (app.rag.judge)
    if judged is not None:
        return judged
    users = [m for m in messages if m.role == "user"]
    return answer_prompt((users or list(messages))[-1].content, earlier_user_turns(messages))


# --- HTTP app -----------------------------------------------------------------------------------


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


# --- serving ------------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from now on, even before uvicorn serves
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmulatorHandle:
    """A running in-process emulator (uvicorn in a background thread)."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
        state: EmulatorState,
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.state = state
        self.url = _url(sock)

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def stats(self) -> EmulatorStats:
        return self.state.stats()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """In-process equivalent of ``POST /_emulator/config``."""
        return self.state.update(ConfigUpdate(**changes))

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmulatorHandle(url={self.url!r})"


def run_emulator(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
) -> EmulatorHandle:
    """Start the emulator on ``host:port`` (0 = a free port) and return once it serves.

    Use as ``with run_emulator(cfg) as emu: ...`` or call ``.stop()`` yourself.
    """
    state = EmulatorState(config or EmulatorConfig())
    sock = _bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state=state),
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="flow-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Flow emulator did not start")
        time.sleep(0.01)
    return EmulatorHandle(server, thread, sock, state)


# --- command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.flow.emulator",
        description="Local emulator of the CI&T Flow gateway (token + chat completions).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument("--client-id", help="expected clientId / FlowAgent (env FLOW_AGENT)")
    parser.add_argument("--client-secret", help="expected clientSecret (env FLOW_AGENT_SECRET)")
    parser.add_argument("--tenant", help="expected FlowTenant (env FLOW_TENANT)")
    parser.add_argument("--app-to-access", default="llm-api")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to each chat call")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500")
    parser.add_argument(
        "--rate-limit-rate", type=float, default=0.0, help="probability of a 429 (Retry-After: 1)"
    )
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds")
    parser.add_argument(
        "--token-latency-ms", type=float, default=0.0, help="between streamed tokens"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default="info")
    return parser


def _config_from_namespace(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> EmulatorConfig:
    return EmulatorConfig.from_env(
        env,
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        tenant=args.tenant,
        app_to_access=args.app_to_access,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        token_lifetime=args.token_lifetime,
        seed=args.seed,
        token_latency_ms=args.token_latency_ms,
    )


def config_from_args(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> EmulatorConfig:
    """Config from command-line flags, credentials falling back to FLOW_* environment variables."""
    return _config_from_namespace(build_parser().parse_args(argv), env)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config_from_namespace(args)
    except ValidationError as exc:
        print(f"invalid emulator configuration: {exc.error_count()} error(s)", file=sys.stderr)
        for err in exc.errors():
            print(f"  --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}", file=sys.stderr)
        return 2
    sock = _bind(config.host, config.port)
    credentials = (
        "credentials from FLOW_AGENT/FLOW_AGENT_SECRET/FLOW_TENANT or flags"
        if config.client_id != DEFAULT_CLIENT_ID
        else f"development credentials (agent {DEFAULT_CLIENT_ID!r}, tenant {DEFAULT_TENANT!r})"
    )
    print(f"Flow emulator serving on {_url(sock)} with {credentials}", flush=True)
    configure_logging("flow-emulator", level=args.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), lifespan="off", log_level=args.log_level, log_config=None
        )
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
