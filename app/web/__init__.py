"""The web chat page: static files served by the API (``GET /`` and ``/static/...``).

No build step: ``static/app.js`` is a dependency-free ES module. Every response of the page
carries a strict Content-Security-Policy (scripts, styles and connections from this origin only;
no inline script or style), and the module renders answers and sources with ``textContent``
only, so a source containing ``<script>`` shows as text. May import core, observability and
contracts only (tests/app/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
PAGE_PATH = "/"
STATIC_PATH = "/static"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["web"])


@router.get(
    PAGE_PATH,
    response_class=FileResponse,
    include_in_schema=True,
    responses={200: {"description": "the chat page", "content": {"text/html": {}}}},
)
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)


class _WithHeaders:
    """Adds the security headers to every static file response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static/``."""
    app.include_router(router)
    app.mount(STATIC_PATH, _WithHeaders(StaticFiles(directory=STATIC_DIR)), name="static")
