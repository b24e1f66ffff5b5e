"""The emulator's knobs and counters: :class:`EmulatorConfig` (every CLI flag and every
``POST /_emulator/config`` field), its partial update, and what ``GET /_emulator/stats``
returns."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_CLIENT_ID = "flowchat-local"
DEFAULT_CLIENT_SECRET = "flowchat-local-secret"  # a development default
DEFAULT_TENANT = "flowchat-local"

CallKind = Literal["token", "chat"]


class EmulatorConfig(BaseModel):
    """The emulator's knobs (CLI flags map 1:1 onto these fields)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8010, ge=0, le=65535)
    client_id: str = Field(default=DEFAULT_CLIENT_ID, min_length=1)
    client_secret: SecretStr = SecretStr(DEFAULT_CLIENT_SECRET)
    tenant: str = Field(default=DEFAULT_TENANT, min_length=1)
    app_to_access: str = "llm-api"
    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    token_lifetime: float = Field(default=3600.0, gt=0)
    seed: int | None = None
    # streaming (``stream: true``): delay between streamed tokens; break off with an error event
    # after this many tokens (0 = never); streaming=False answers streaming requests with one
    # JSON completion, like a gateway that does not stream
    token_latency_ms: float = Field(default=0.0, ge=0)
    stream_fail_after: int = Field(default=0, ge=0)
    streaming: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EmulatorConfig:
        """Credentials from FLOW_AGENT / FLOW_AGENT_SECRET / FLOW_TENANT when set."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in (
            ("client_id", "FLOW_AGENT"),
            ("client_secret", "FLOW_AGENT_SECRET"),
            ("tenant", "FLOW_TENANT"),
        ):
            if env.get(var):
                values[field] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class ConfigUpdate(BaseModel):
    """Body of ``POST /_emulator/config``: a partial update plus one-shot fault controls."""

    model_config = ConfigDict(extra="forbid")

    client_id: str | None = Field(default=None, min_length=1)
    client_secret: SecretStr | None = None
    tenant: str | None = Field(default=None, min_length=1)
    app_to_access: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    rate_limit_rate: float | None = Field(default=None, ge=0, le=1)
    token_lifetime: float | None = Field(default=None, gt=0)
    seed: int | None = None
    token_latency_ms: float | None = Field(default=None, ge=0)
    stream_fail_after: int | None = Field(default=None, ge=0)
    streaming: bool | None = None
    fail_next: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=400, le=599)
    expire_tokens: bool = False


class EmulatorStats(BaseModel):
    """Counters since start: calls per endpoint and responses per status code."""

    token_calls: int = 0
    chat_calls: int = 0
    in_flight: int = 0
    tokens_issued: int = 0
    token_responses: dict[str, int] = Field(default_factory=dict)
    chat_responses: dict[str, int] = Field(default_factory=dict)
