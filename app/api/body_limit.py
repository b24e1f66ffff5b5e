"""A request-body limit for every route, enforced while the body is read.

A declared ``Content-Length`` over the limit is refused at once; a chunked body (no length) or
one that lies about its length is counted as it arrives and refused with 413 as soon as it
passes the limit, so no route ever holds more than its limit in memory or on disk. Uploads
(``POST /api/documents``) get room for their files; every other route gets
``MAX_REQUEST_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.openai_errors import is_v1, openai_error_body
from app.contracts import DOCUMENTS_PATH
from app.core.settings import Settings

LimitFor = Callable[[str, str], tuple[int, str]]  # (method, path) -> (bytes, what it is)


def limits_from_settings(settings: Settings) -> LimitFor:
    from app.api.documents import FORM_OVERHEAD_BYTES, MAX_FILES_PER_REQUEST

    upload = settings.max_upload_bytes * MAX_FILES_PER_REQUEST + FORM_OVERHEAD_BYTES
    upload_what = (
        f"an upload of {MAX_FILES_PER_REQUEST} files of {settings.MAX_UPLOAD_MB:g} MB "
        "(MAX_UPLOAD_MB)"
    )
    default = settings.MAX_REQUEST_BYTES
    default_what = f"{default} bytes (MAX_REQUEST_BYTES)"

    def limit_for(method: str, path: str) -> tuple[int, str]:
        if method == "POST" and path.rstrip("/") == DOCUMENTS_PATH:
            return upload, upload_what
        return default, default_what

    return limit_for


def too_large(what: str) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {what}")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: LimitFor) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, what, scope["path"])
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises an HTTPException met while reading the body
                    raise too_large(what)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:  # raised outside FastAPI's own handling (e.g. a form)
            if exc.status_code != 413 or response_started:
                raise
            await _send_413(send, what, scope["path"])


async def _send_413(send: Send, what: str, path: str) -> None:
    import json

    detail = str(too_large(what).detail)
    content = openai_error_body(413, detail) if is_v1(path) else {"detail": detail}
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
