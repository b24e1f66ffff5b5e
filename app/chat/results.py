"""What a chat job takes and what it stores: the contract between the API and the worker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.rag.prompt import Source

HistoryRole = Literal["user", "assistant"]


class Turn(BaseModel):
    """One earlier message of a conversation (what the prompt's bounded history carries)."""

    model_config = ConfigDict(extra="ignore")

    role: HistoryRole
    content: str


class ChatJob(BaseModel):
    """The keyword arguments of ``answer_chat`` (JSON-serialisable: plain strings and lists)."""

    question: str
    top_k: int | None = None
    submitted_at: float | None = None
    conversation_id: str | None = None
    history: list[Turn] = Field(default_factory=list)
    key_id: str | None = None  # the key id (app.access.keys) that owns the job and pays its tokens
    reserved_tokens: int = 0  # reserved at admission (app.access.quotas); the worker settles it


class Timings(BaseModel):
    queued_seconds: float
    retrieval_seconds: float
    flow_seconds: float
    total_seconds: float
    first_token_seconds: float | None = None  # submission to the first streamed token


class Usage(BaseModel):
    """Flow's own token counts for the answer (0 when the gateway sent none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatResult(BaseModel):
    """The stored result of a chat job; every field of it may reach the client that owns the
    job (the stream's ``done`` event carries it), so retrieval internals such as the standalone
    question the worker searched with stay out of it."""

    answer: str
    sources: list[Source]
    timings: Timings
    empty: bool
    usage: Usage = Field(default_factory=Usage)
    conversation_id: str | None = None


JobState = Literal["queued", "started", "finished", "failed"]


class ChatResponse(BaseModel):
    """A chat job as the API shows it (``GET /api/chat/{id}``)."""

    id: str
    status: JobState
    answer: str | None = None
    error: str | None = None
    sources: list[Source] = []
    timings: Timings | None = None
    usage: Usage | None = None
    conversation_id: str | None = None
