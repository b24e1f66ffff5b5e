"""Wire models of the CI&T Flow gateway: token exchange and OpenAI-style chat completions.

The client and the emulator both use these, so the two cannot drift apart. Response models
ignore unknown fields (the real gateway may add some); request models are strict about what
they need.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One message of a conversation sent to Flow."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str


class ChatCompletionRequest(BaseModel):
    """Body of ``POST /ai-orchestration-api/v1/openai/chat/completions``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: dict[str, bool] | None = None  # {"include_usage": true} when streaming


class ResponseMessage(BaseModel):
    """The message inside a completion choice (``content`` may be null for tool calls)."""

    model_config = ConfigDict(extra="ignore")

    role: str = "assistant"
    content: str | None = None


class Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = 0
    message: ResponseMessage
    finish_reason: str | None = None


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    """OpenAI-style chat completion as returned by Flow."""

    model_config = ConfigDict(extra="ignore")

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice] = Field(min_length=1)
    usage: Usage | None = None

    @property
    def content(self) -> str:
        """Text of the first choice, or "" when the gateway sent none."""
        return self.choices[0].message.content or ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason


class ChunkDelta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: int = 0
    delta: ChunkDelta = Field(default_factory=ChunkDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed chat completion (OpenAI's ``chat.completion.chunk``);
    the last one may carry ``usage`` and no choices."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class TokenRequest(BaseModel):
    """Body of ``POST /auth-engine-api/v1/api-key/token`` (camelCase on the wire)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    client_id: str = Field(alias="clientId", min_length=1)
    client_secret: SecretStr = Field(alias="clientSecret")
    app_to_access: str = Field(alias="appToAccess", min_length=1)

    def wire(self) -> dict[str, str]:
        """The JSON body with the secret revealed: only ever handed to the HTTP transport."""
        return {
            "clientId": self.client_id,
            "clientSecret": self.client_secret.get_secret_value(),
            "appToAccess": self.app_to_access,
        }


class TokenResponse(BaseModel):
    """Answer of the token endpoint. The token is a ``SecretStr`` so it never shows in reprs."""

    model_config = ConfigDict(extra="ignore")

    access_token: SecretStr
    expires_in: float = Field(gt=0)
