"""The OpenAPI schema says what the service really sends, and 405s name the allowed methods.

- One error shape everywhere on /api: ``{"detail": "one sentence"}`` (422s add the structured
  ``errors`` list). FastAPI documents 422 as its ``HTTPValidationError`` (a list in ``detail``);
  the service's handler answers a sentence, so the schema is rewritten to :class:`ErrorResponse`.
- Every operation lists the error statuses it can return: those its router or route declares
  (``responses=``), plus 400/413/422 for a request body (malformed body, body limit,
  validation) and 422 for parameters. An error status without a body gets the error shape.
- /v1 answers every error in OpenAI's shape (``app.api.openai_errors``): its operations
  document :class:`OpenAIErrorResponse` instead.
- A 405 carries ``Allow`` with every method the path supports (Starlette lists only the
  methods of the first route that matched the path).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.openai_errors import OpenAIErrorResponse, is_v1, openai_error

ERROR_REF = "#/components/schemas/ErrorResponse"
OPENAI_ERROR_REF = "#/components/schemas/OpenAIErrorResponse"
DESCRIPTIONS = {
    400: "The body could not be parsed",
    401: "No API key (or admin token) was sent",
    403: "The key or token is not valid",
    404: "No such item (it may have expired)",
    409: "Conflicting operation in progress",
    413: "The request body is over its limit",
    415: "Unsupported file type",
    422: "The request is not valid: the detail says why",
    429: "A limit was reached; retry after Retry-After seconds",
    502: "The answer could not be produced",
    503: "A dependency (Redis) is unavailable or full; retry after Retry-After seconds",
    504: "No answer in time",
    507: "Not enough storage for this request; nothing was stored",
}


class ErrorResponse(BaseModel):
    """Every error on /api: one sentence in ``detail``."""

    detail: str


# statuses that routes with a key or the admin token can always return
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {}, 403: {}}
REDIS_RESPONSES: dict[int | str, dict[str, Any]] = {503: {}}


def _error_content(ref: str = ERROR_REF) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def rewrite(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorResponse"] = ErrorResponse.model_json_schema()
    openai_schema = OpenAIErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.update(openai_schema.pop("$defs", {}))
    components["OpenAIErrorResponse"] = openai_schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        error_ref = OPENAI_ERROR_REF if is_v1(path) else ERROR_REF
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            extra: set[int] = set()
            if operation.get("parameters"):
                extra.add(422)
            if "requestBody" in operation:
                extra |= {400, 413, 422}
            for code in extra:
                responses.setdefault(str(code), {})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                response["description"] = DESCRIPTIONS.get(int(code), "Error")
                content = response.get("content", {}).get("application/json", {})
                ref = content.get("schema", {}).get("$ref", "")
                if not content or ref.endswith("/HTTPValidationError") or error_ref != ERROR_REF:
                    response["content"] = _error_content(error_ref)
    return schema


def install(app: FastAPI) -> None:
    """Rewrite the schema once, and answer 405s with the path's documented methods."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = rewrite(original())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    allowed: list[tuple[re.Pattern[str], list[str]]] = []

    def methods_for(path: str) -> list[str]:
        if not allowed:
            # the most specific template first (/documents/ingest before /documents/{id})
            paths = sorted(openapi()["paths"].items(), key=lambda item: item[0].count("{"))
            for template, operations in paths:
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                allowed.append((re.compile(f"^{pattern}$"), sorted(m.upper() for m in operations)))
        for pattern, methods in allowed:
            if pattern.match(path):
                return methods
        return []

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        methods = methods_for(request.url.path)
        allow = ", ".join(methods)
        if is_v1(request.url.path):
            message = f"{request.method} is not allowed here; allowed: {allow}"
            return openai_error(405, message, {"Allow": allow})
        return JSONResponse(
            status_code=405,
            content={"detail": f"{request.method} is not allowed here; allowed: {allow}"},
            headers={"Allow": allow},
        )

    app.add_exception_handler(StarletteHTTPException, handler)
