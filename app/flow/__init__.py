"""Client of the CI&T Flow LLM gateway (``FlowClient``) and, in ``app.flow.emulator``, a local
emulator of the same contract. Importing this package does not import the emulator (FastAPI,
uvicorn), so worker processes stay light. May import core, observability, contracts and the
other service packages; never api, worker, local or access (tests/app/test_layers.py)."""

from __future__ import annotations

from app.flow.client import FlowClient
from app.flow.errors import (
    FlowAuthError,
    FlowBadResponseError,
    FlowError,
    FlowRateLimitedError,
    FlowTimeoutError,
    FlowUnavailableError,
)
from app.flow.models import ChatCompletion, ChatCompletionRequest, ChatMessage, TokenResponse, Usage

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "FlowAuthError",
    "FlowBadResponseError",
    "FlowClient",
    "FlowError",
    "FlowRateLimitedError",
    "FlowTimeoutError",
    "FlowUnavailableError",
    "TokenResponse",
    "Usage",
]
