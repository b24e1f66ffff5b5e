"""OpenAI's error shape, which every ``/v1`` response uses (so the OpenAI SDKs raise their typed
exceptions). One home for it: the ``/v1`` routes, the app-wide handlers (Redis, 405), the body
limit and the OpenAPI schema all answer or document ``/v1`` errors through this module."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

V1_PREFIX = "/v1"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int | None = None


class OpenAIErrorResponse(BaseModel):
    """Every error on /v1: ``{"error": {"message", "type", "param", "code"}}``."""

    error: OpenAIErrorDetail


def is_v1(path: str) -> bool:
    return path == V1_PREFIX or path.startswith(V1_PREFIX + "/")


def openai_error_body(status: int, message: str) -> dict[str, object]:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(openai_error_body(status, message), status_code=status, headers=headers)
