"""The FastAPI application: ``uvicorn app.api.main:app``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from rq import Queue

from app.api import chat, documents, health, metrics_route, openai_compat, passages
from app.flow.client import FlowClient
from app.metrics import FlowchatCollector
from app.settings import Settings, get_settings
from app.web import install as install_web

log = logging.getLogger("flowchat.api")


def _chroma_probe(settings: Settings) -> Callable[[], str]:
    if settings.CHROMA_URL:
        url = f"{settings.CHROMA_URL}/api/v2/heartbeat"

        def probe_server() -> str:
            httpx.get(url, timeout=2.0).raise_for_status()
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
    return JSONResponse(
        status_code=422, content={"detail": "; ".join(problems), "errors": exc.errors()}
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5
        )
        app.state.settings = settings
        app.state.redis = connection
        app.state.aioredis = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        app.state.queue = Queue(settings.RQ_QUEUE, connection=connection)
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
        try:
            yield
        finally:
            app.state.flow_client.close()
            await app.state.aioredis.aclose()
            connection.close()

    app = FastAPI(
        title="flowchat",
        version="0.1.0",
        description="Retrieval-augmented chat on the CI&T Flow LLM gateway. See docs/api.md.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for module in (health, chat, documents, metrics_route, openai_compat):
        app.include_router(module.router)
    app.include_router(passages.router)  # cited passages (API key) and original files (admin)
    install_web(app)  # the chat page at / and its assets under /static
    return app


def __getattr__(name: str) -> FastAPI:
    """``app.api.main:app`` builds the application on first access (after settings load)."""
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
