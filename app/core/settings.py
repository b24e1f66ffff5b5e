"""Service configuration: every variable of the Environment contract, typed, with defaults that
serve ``make run`` (everything on localhost, no cloud account).

A bad value stops start-up with a message that names the variable (see ``load_settings``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.contracts import DEFAULT_WORKER_THREADS, MAX_WORKER_THREADS, QUEUE_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VAR = REPO_ROOT / "var"
SECRETS_DIR_ENV = "SECRETS_DIR"  # files named like the variables they set (load_settings)


class SettingsError(SystemExit):
    """Raised (and exits non-zero) when the environment holds an invalid value."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class LoggingSettings(BaseSettings):
    """The observability settings (read by :mod:`app.observability.logs`). :class:`Settings`
    inherits them (so a stack's app env may set them); logging reads them on their own, so an
    unrelated bad variable never keeps a process from logging why it stops."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=True)

    LOG_FORMAT: Literal["auto", "json", "console"] = "auto"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # OTLP/HTTP collector for traces (read by the OpenTelemetry SDK itself; unset: no export)
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None


class Settings(LoggingSettings):  # + LOG_FORMAT, LOG_LEVEL, OTEL_EXPORTER_OTLP_ENDPOINT
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=True)

    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    RQ_QUEUE: str = QUEUE_NAME

    FLOW_BASE_URL: str = "http://127.0.0.1:8010"
    FLOW_TENANT: str = ""
    FLOW_AGENT: str = ""
    FLOW_AGENT_SECRET: SecretStr = SecretStr("")
    FLOW_APP_TO_ACCESS: str = "llm-api"
    FLOW_MODEL: str = "gpt-4o-mini"
    FLOW_TIMEOUT_SECONDS: float = Field(default=20.0, gt=0)
    FLOW_MAX_RETRIES: int = Field(default=3, ge=0, le=10)
    FLOW_BACKOFF_MAX_SECONDS: float = Field(default=8.0, ge=0)

    VECTOR_STORE_PATH: Path = DEFAULT_VAR / "chroma"
    CHROMA_URL: str | None = None
    CHROMA_COLLECTION: str = "flowchat"
    DOCUMENTS_PATH: Path = DEFAULT_VAR / "documents"
    # the one model the image installs (app.rag.model_setup): any other name is refused at start
    # rather than silently ignored (nothing selects among models; docs/runbook.md names none)
    EMBEDDINGS_MODEL: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    CHUNK_SIZE: int = Field(default=800, ge=100, le=8000)
    CHUNK_OVERLAP: int = Field(default=120, ge=0)
    TOP_K: int = Field(default=5, ge=1, le=50)

    ALLOWED_EXTENSIONS: Annotated[list[str], NoDecode] = [".txt", ".md", ".html", ".pdf", ".docx"]
    MAX_UPLOAD_MB: float = Field(default=20.0, gt=0)
    MAX_MESSAGE_CHARS: int = Field(default=4000, ge=1)
    # every request body except uploads (which get MAX_UPLOAD_MB per file), counted as it is read
    MAX_REQUEST_BYTES: int = Field(default=1_048_576, ge=1024)
    MAX_QUEUE_DEPTH: int = Field(default=100, ge=1)
    JOB_TIMEOUT_SECONDS: int = Field(default=120, ge=1)
    # RQ work loops (chats in flight) per chat worker process (app.worker.threads)
    WORKER_THREADS: int = Field(default=DEFAULT_WORKER_THREADS, ge=1, le=MAX_WORKER_THREADS)
    RESULT_TTL_SECONDS: int = Field(default=86400, ge=60)

    ADMIN_TOKEN: SecretStr = SecretStr("")
    API_KEYS: Annotated[list[SecretStr], NoDecode] = []
    # one key per line (blank lines and '#' comments ignored); re-read at request time
    API_KEYS_FILE: Path | None = None
    API_KEYS_CACHE_SECONDS: float = Field(default=3.0, ge=0, le=30)
    # without keys the API refuses to start unless this is set explicitly (`make run` sets it)
    ALLOW_ANONYMOUS_CHAT: bool = False
    # per-key limits, counted in Redis (app.access.quotas)
    RATE_LIMIT_PER_MINUTE: int = Field(default=60, ge=1)
    FLOW_TOKENS_PER_DAY: int = Field(default=200_000, ge=1)
    # sent to Flow as max_tokens; a chat reserves its prompt's estimate plus this (access.quotas)
    CHAT_MAX_TOKENS: int = Field(default=1024, ge=16, le=16384)
    # bytes one key's chats may write while their results are kept (RESULT_TTL_SECONDS):
    # job, result, answer stream and conversation turns, estimated at admission
    MAX_STORED_BYTES_PER_KEY: int = Field(default=32 * 1024 * 1024, ge=65536)
    # answer streams and ?wait= requests one key may hold open at once (every API replica)
    MAX_OPEN_STREAMS_PER_KEY: int = Field(default=8, ge=1)
    # key ids (metrics, logs, jobs, quotas) are an HMAC of the key under this secret
    KEY_ID_SECRET: SecretStr = SecretStr("")
    # interactive API docs (/docs, /redoc); the schema stays at /openapi.json
    API_DOCS_ENABLED: bool = False
    # /metrics is served on this port (a second listener in the API process), not the API's
    METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)

    # every Redis client (API, workers, ops commands) authenticates with it when set
    REDIS_PASSWORD: SecretStr = SecretStr("")
    REDIS_SOCKET_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    REDIS_MAX_CONNECTIONS: int = Field(default=50, ge=2)
    CHROMA_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # every Chroma server client sends it (Authorization: Bearer); the server requires it
    CHROMA_TOKEN: SecretStr = SecretStr("")

    MAINTENANCE_AFTER_FAILURES: int = Field(default=3, ge=1)

    # ingestion (queue flow_ingest): its own depth limit, and the hard limits of the child
    # process that parses untrusted documents (app.ingest.sandbox, app.ingest.limits)
    MAX_INGEST_QUEUE_DEPTH: int = Field(default=200, ge=1)
    INGEST_MAX_MEMORY_MB: int = Field(default=1024, ge=128)
    INGEST_MAX_CPU_SECONDS: int = Field(default=600, ge=1)
    # below the ingest job's 1,800 s timeout (app.ingest.queueing), with time left to embed
    INGEST_MAX_WALL_SECONDS: int = Field(default=1200, ge=1, le=1500)
    INGEST_MAX_OUTPUT_MB: int = Field(default=64, ge=1)
    INGEST_MAX_EXPANDED_MB: int = Field(default=200, ge=1)
    INGEST_MAX_COMPRESSION_RATIO: int = Field(default=100, ge=2)
    INGEST_MAX_PAGES: int = Field(default=1000, ge=1)
    INGEST_MAX_PAGE_MEGAPIXELS: float = Field(default=100.0, gt=0)
    INGEST_RETRY_INTERVALS: Annotated[list[int], NoDecode] = [15, 60, 180]

    @field_validator("ALLOWED_EXTENSIONS", mode="before")
    @classmethod
    def _parse_extensions(cls, value: object) -> object:
        items = _split_csv(value)
        if isinstance(items, list):
            return [e.lower() if str(e).startswith(".") else f".{str(e).lower()}" for e in items]
        return items

    @field_validator("ALLOWED_EXTENSIONS")
    @classmethod
    def _extensions_have_loaders(cls, value: list[str]) -> list[str]:
        """An extension without a loader would be accepted at upload and fail every ingestion:
        refuse it here, naming the extensions that have one (app.ingest.LOADERS)."""
        from app.ingest import LOADERS  # the registry; imported late (it imports the settings)

        unknown = [e for e in value if e not in LOADERS]
        if unknown:
            raise ValueError(
                f"no loader for {', '.join(unknown)}; the extensions with a loader are "
                f"{', '.join(sorted(LOADERS))}"
            )
        return value

    @field_validator("INGEST_RETRY_INTERVALS", mode="before")
    @classmethod
    def _parse_intervals(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("API_KEYS", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("API_KEYS_FILE", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("REDIS_URL")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("FLOW_BASE_URL")
    @classmethod
    def _check_flow_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("CHROMA_URL")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.CHUNK_OVERLAP >= self.CHUNK_SIZE:
            raise ValueError(
                f"CHUNK_OVERLAP ({self.CHUNK_OVERLAP}) must be smaller than CHUNK_SIZE "
                f"({self.CHUNK_SIZE})"
            )
        return self

    @model_validator(mode="after")
    def _check_flow_budget(self) -> Settings:
        """A chat job must outlive the Flow client's worst case (every attempt timing out plus
        the longest backoffs), or RQ kills it before it can fail with Flow's reason."""
        worst = (self.FLOW_MAX_RETRIES + 1) * self.FLOW_TIMEOUT_SECONDS
        worst += self.FLOW_MAX_RETRIES * self.FLOW_BACKOFF_MAX_SECONDS
        if worst >= self.JOB_TIMEOUT_SECONDS:
            raise ValueError(
                f"JOB_TIMEOUT_SECONDS ({self.JOB_TIMEOUT_SECONDS}) must exceed the Flow client's "
                f"worst case of {worst:g} s: (FLOW_MAX_RETRIES + 1) x FLOW_TIMEOUT_SECONDS + "
                "FLOW_MAX_RETRIES x FLOW_BACKOFF_MAX_SECONDS"
            )
        return self

    @property
    def flow_configured(self) -> bool:
        """True when real Flow credentials are set (otherwise `make run` starts the emulator)."""
        return bool(
            self.FLOW_TENANT and self.FLOW_AGENT and self.FLOW_AGENT_SECRET.get_secret_value()
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.MAX_UPLOAD_MB * 1024 * 1024)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; exit with a message naming each bad variable.

    ``SECRETS_DIR`` (compose mounts its secrets at /run/secrets): a file there named like a
    variable (``REDIS_PASSWORD``, ``CHROMA_TOKEN``, ``ADMIN_TOKEN``) gives its value when the
    environment does not."""
    secrets_dir = os.environ.get(SECRETS_DIR_ENV) or None
    try:
        return Settings(_secrets_dir=secrets_dir, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
