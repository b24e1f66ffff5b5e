"""The FastAPI application: ``uvicorn app.api.main:app``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import redis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from app.access.keys import KeyRing, key_id, require_key_source
from app.access.quotas import OpenSlots, Quotas
from app.api import chat, documents, health, metrics_route, openai_compat, openapi, passages
from app.api.body_limit import BodyLimitMiddleware, limits_from_settings
from app.api.openai_errors import is_v1, openai_error
from app.api.request_context import RequestContextMiddleware
from app.core.redis_clients import (
    REDIS_FULL,
    async_redis_client,
    is_out_of_memory,
    job_queue,
    redis_client,
)
from app.core.settings import Settings, get_settings
from app.flow.client import FlowClient
from app.observability import tracing
from app.observability.logs import configure_logging
from app.observability.metrics import FlowchatCollector
from app.web import install as install_web

REDIS_UNREACHABLE = "the job queue (Redis) is unreachable; retry in a moment"
REDIS_RETRY_AFTER_SECONDS = 5

log = logging.getLogger("flowchat.api")


def _chroma_probe(settings: Settings) -> Callable[[], str]:
    if settings.CHROMA_URL:
        url = f"{settings.CHROMA_URL}/api/v2/heartbeat"

        def probe_server() -> str:
            httpx.get(url, timeout=2.0).raise_for_status()  # bounded: the probe's own budget
            return f"Chroma server at {settings.CHROMA_URL} answers"

        return probe_server

    def probe_embedded() -> str:
        path = settings.VECTOR_STORE_PATH
        if not path.is_dir() or not os.access(path, os.W_OK):
            raise RuntimeError(f"{path} is not a writable directory")
        return f"embedded Chroma store at {path}"

    return probe_embedded


def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence per problem (and the structured list)."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
        problems.append(f"{where}: {err['msg']}")
    errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: _describe_bytes})
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems), "errors": errors})


def _describe_bytes(value: bytes) -> str:
    return f"<{len(value)} bytes that are not JSON>"


def _redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
    """Every route: Redis trouble is a 503 with a reason, never a 500 (one handler for all;
    /v1 answers it in OpenAI's error shape)."""
    detail = REDIS_UNREACHABLE
    if is_out_of_memory(exc):
        detail = REDIS_FULL
    log.warning("Redis error answered with 503: %s", exc.__class__.__name__)
    headers = {"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)}
    if is_v1(request.url.path):
        return openai_error(503, detail, headers)
    return JSONResponse(status_code=503, content={"detail": detail}, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("api", settings=settings)
    tracing.configure_tracing("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection = redis_client(settings)
        app.state.settings = settings
        app.state.redis = connection
        app.state.aioredis = async_redis_client(settings)
        app.state.queue = job_queue(settings.RQ_QUEUE, connection)
        app.state.keyring = KeyRing.from_settings(settings)
        app.state.quotas = Quotas(connection, settings)
        # a stream or wait lasts at most the job's timeout plus a wait's 30 s
        app.state.open_slots = OpenSlots(
            app.state.aioredis,
            settings.MAX_OPEN_STREAMS_PER_KEY,
            hold_seconds=settings.JOB_TIMEOUT_SECONDS + 60,
        )
        app.state.readiness = health.ReadinessCache()
        app.state.flow_client = FlowClient.from_settings(
            settings, max_retries=0, timeout=health.FLOW_CHECK_TIMEOUT
        )
        app.state.flow_check_lock = threading.Lock()
        app.state.chroma_probe = _chroma_probe(settings)
        registry = CollectorRegistry()
        store_path = None if settings.CHROMA_URL else settings.VECTOR_STORE_PATH
        if settings.CHROMA_URL and settings.VECTOR_STORE_PATH.is_dir():
            store_path = settings.VECTOR_STORE_PATH  # `make run`: the server's directory is local
        registry.register(FlowchatCollector(connection, settings.RQ_QUEUE, store_path))
        app.state.registry = registry
        metrics_server = metrics_route.serve(registry, settings.METRICS_PORT)
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            app.state.flow_client.close()
            await app.state.aioredis.aclose()
            connection.close()

    app = FastAPI(
        title="flowchat",
        version="0.1.0",
        description="Retrieval-augmented chat on the CI&T Flow LLM gateway. See docs/api.md.",
        lifespan=lifespan,
        # interactive docs only when enabled; the schema stays at /openapi.json
        docs_url="/docs" if settings.API_DOCS_ENABLED else None,
        redoc_url="/redoc" if settings.API_DOCS_ENABLED else None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(redis.RedisError, _redis_error)  # type: ignore[arg-type]
    for module in (health, chat, documents, openai_compat):
        app.include_router(module.router)
    if settings.METRICS_PORT is None:  # no port of its own: served by the API (`make run`)
        app.include_router(metrics_route.router)
    app.include_router(passages.router)  # cited passages (API key) and original files (admin)
    install_web(app)  # the chat page at / and its assets under /static
    app.add_middleware(BodyLimitMiddleware, limit_for=limits_from_settings(settings))
    openapi.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        # env and key file, re-read like the auth (the ring exists once the lifespan started)
        api_keys=lambda: (
            getattr(app.state, "keyring", None).keys() if hasattr(app.state, "keyring") else ()
        ),
        key_id=lambda key: key_id(key, settings.KEY_ID_SECRET.get_secret_value()),
    )
    tracing.instrument_app(app)
    return app


def __getattr__(name: str) -> FastAPI:
    """``app.api.main:app`` builds the application on first access (after settings load)."""
    if name == "app":
        settings = get_settings()
        require_key_source(settings)  # no keys and no ALLOW_ANONYMOUS_CHAT: refuse to start
        application = create_app(settings)  # configures logging: warn after it, as JSON
        if settings.ALLOW_ANONYMOUS_CHAT:
            log.warning("ALLOW_ANONYMOUS_CHAT is on: chat without an API key is accepted")
        if not settings.KEY_ID_SECRET.get_secret_value():
            log.warning("KEY_ID_SECRET is not set: key ids are HMACs under an empty secret")
        globals()["app"] = application
        return application
    raise AttributeError(name)
