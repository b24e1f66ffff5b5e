"""Request and response models of the HTTP API (see docs/api.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.chat.results import ChatResponse, JobState

__all__ = ["ChatAccepted", "ChatRequest", "ChatResponse", "Check", "Readiness", "StatusUpdate"]

# "has a character that is not white space", written so that Python, ECMA-262 and Rust regex
# engines agree (their \s differ: Python counts \x1c-\x1f as space, the others do not), so
# the schema's pattern and the service's own check accept exactly the same text
NOT_BLANK = (
    r"[^\x09-\x0d\x20\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)


def has_text(value: str | None) -> bool:
    return bool(value) and re.search(NOT_BLANK, value or "") is not None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # at least one non-blank character: a blank question is refused (422)
    message: str = Field(
        min_length=1, json_schema_extra={"pattern": NOT_BLANK}, description="the question"
    )
    top_k: int | None = Field(default=None, ge=1, le=50)
    conversation_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="continue this conversation (omit to start one; the answer returns its id)",
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not has_text(value):
            raise ValueError("message is empty: send the question in 'message'")
        return value

    @field_validator("top_k", mode="before")
    @classmethod
    def _a_number(cls, value: object) -> object:
        # JSON Schema's integer includes 3.0, but not "3" or true: never coerce those
        if isinstance(value, str | bool):
            raise ValueError("must be a JSON integer")
        return value


class ChatAccepted(BaseModel):
    id: str
    status: JobState = "queued"
    status_url: str
    stream_url: str
    conversation_id: str


class Check(BaseModel):
    ok: bool
    detail: str | None = None  # only for the admin token: internal URLs and error text
    count: int | None = None


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, Check]


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    maintenance: bool
    reason: str | None = Field(default=None, max_length=500)
