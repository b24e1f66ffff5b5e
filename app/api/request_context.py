"""ASGI middleware: a request id (``X-Request-ID``, taken from the client when it is a plain
token, else made) and the hashed API key id, bound to every log line of the request and carried
into the jobs it enqueues; one access line per request (never its body or query string)."""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from app.contracts import METRICS_PATH, PING_PATH
from app.observability.logs import api_key_id, bound, clear_ids

log = logging.getLogger("flowchat.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
QUIET_PATHS = (PING_PATH, METRICS_PATH)  # probes and scrapes: DEBUG, not INFO

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


def _given_key(headers: dict[bytes, bytes]) -> str | None:
    key = headers.get(b"x-api-key")
    if key:
        return key.decode("latin-1").strip()
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        api_keys: Callable[[], Iterable[str]],
        key_id: Callable[[str], str] = api_key_id,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.key_id = key_id  # the server's (an HMAC under KEY_ID_SECRET)

    def _key_id(self, headers: dict[bytes, bytes]) -> str | None:
        """The id of a configured API key the request presents; nothing for anything else
        (an admin token or a wrong key is never hashed into the logs)."""
        given = _given_key(headers)
        if not given:
            return None
        for key in self.api_keys():
            if secrets.compare_digest(given.encode(), key.encode()):
                return self.key_id(key)
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        clear_ids()
        with bound(request_id=request_id, api_key_id=self._key_id(headers)):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                path = scope.get("path", "")
                level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
                log.log(
                    level,
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
