"""Request and response models of the HTTP API (see docs/api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.chat.results import ChatResponse, JobState

__all__ = ["ChatAccepted", "ChatRequest", "ChatResponse", "Check", "Readiness", "StatusUpdate"]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="the question")
    top_k: int | None = Field(default=None, ge=1, le=50)
    conversation_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="continue this conversation (omit to start one; the answer returns its id)",
    )


class ChatAccepted(BaseModel):
    id: str
    status: JobState = "queued"
    status_url: str
    stream_url: str
    conversation_id: str


class Check(BaseModel):
    ok: bool
    detail: str
    count: int | None = None


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, Check]


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maintenance: bool
    reason: str | None = Field(default=None, max_length=500)
