"""Request and response models of the HTTP API (see docs/api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.rag.prompt import Source
from app.worker import Timings

JobState = Literal["queued", "started", "finished", "failed"]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="the question")
    top_k: int | None = Field(default=None, ge=1, le=50)


class ChatAccepted(BaseModel):
    id: str
    status: JobState = "queued"
    status_url: str


class ChatResponse(BaseModel):
    id: str
    status: JobState
    answer: str | None = None
    error: str | None = None
    sources: list[Source] = []
    timings: Timings | None = None


class Check(BaseModel):
    ok: bool
    detail: str | None = None  # only for the admin token: internal URLs and error text
    count: int | None = None


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, Check]


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maintenance: bool
    reason: str | None = Field(default=None, max_length=500)
