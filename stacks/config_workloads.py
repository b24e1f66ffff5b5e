"""Config of the service's workloads: API, chat and ingest workers, Redis, Chroma, documents, Flow.

Also what the pods' `env` may hold (`validate_app_env`: app settings the stack does not set
itself, validated by the app's own settings model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from app.contracts import DEFAULT_WORKER_THREADS, MAX_WORKER_THREADS
from stacks.config_types import ConfigModel, PinnedImage, Quantity, Replicas, Resources
from stacks.images import REDIS_IMAGE


class ApiConfig(ConfigModel):
    replicas: Replicas = 2
    max_queue_depth: int = Field(100, ge=1)  # MAX_QUEUE_DEPTH: 429 above this
    resources: Resources = Resources(memory_request="512Mi", memory_limit="1536Mi")


SHUTDOWN_MARGIN_SECONDS = 30  # a chat worker's grace period beyond its longest job


class WorkerConfig(ConfigModel):
    """Chat worker pods: one process each running ``threads_per_pod`` RQ work loops, i.e. that
    many chats in flight (app.worker.threads). KEDA scales them on two targets per replica:

    * ``queue_length_per_replica``: jobs no loop has taken yet (``rq:queue:flow_tasks``); any
      such job means every loop is busy. Default: half a pod's loops.
    * ``in_flight_per_replica``: jobs waiting or running (Prometheus ``rq_jobs`` queued +
      started), so that KEDA does not scale in while every loop is busy and the list is empty.
      Default: three quarters of a pod's loops, a pod is added before the others are full.

    A pod that is scaled in (or evicted) stops taking jobs and finishes the ones it runs: its
    grace period is the job timeout (``JOB_TIMEOUT_SECONDS``) plus
    ``SHUTDOWN_MARGIN_SECONDS``. Sizing (docs/performance.md): ~300 MB per 32-loop process,
    15-22 ms of worker CPU per chat.
    """

    # >= 1: readiness (/api/health/ready) is 503 without a worker, so with zero workers the
    # ingress sends no chat, nothing is queued and KEDA's queue-length trigger never wakes one.
    min_replicas: int = Field(1, ge=1)
    max_replicas: Replicas = 4
    threads_per_pod: int = Field(DEFAULT_WORKER_THREADS, ge=1, le=MAX_WORKER_THREADS)
    queue_length_per_replica: int | None = Field(None, ge=1)
    in_flight_per_replica: int | None = Field(None, ge=1)
    resources: Resources = Resources(
        cpu_request="250m", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> WorkerConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})"
            )
        for name, value in (
            ("queueLengthPerReplica", self.queue_length_per_replica),
            ("inFlightPerReplica", self.in_flight_per_replica),
        ):
            if value is not None and value > self.threads_per_pod:
                raise ValueError(
                    f"{name} ({value}) must be <= threadsPerPod ({self.threads_per_pod}): "
                    "a pod carries at most that many chats, more per replica would leave "
                    "chats waiting before KEDA adds a pod"
                )
        return self

    @property
    def queue_length_target(self) -> int:
        """Waiting chat jobs per replica (KEDA's redis trigger)."""
        return self.queue_length_per_replica or max(1, self.threads_per_pod // 2)

    @property
    def in_flight_target(self) -> int:
        """Waiting + running chat jobs per replica (KEDA's prometheus trigger)."""
        return self.in_flight_per_replica or max(1, self.threads_per_pod * 3 // 4)


class IngestWorkerConfig(ConfigModel):
    """Ingestion workers (`python -m app.ingest.worker --workers N` on the ingest queue)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    workers_per_pod: int = Field(1, ge=1)  # --workers
    # one replica per this many ingest jobs, waiting or running
    jobs_per_replica: int = Field(2, ge=1)
    # long enough for an OCR job to finish after SIGTERM (the worker drains, then exits)
    termination_grace_seconds: int = Field(1800, ge=30)
    resources: Resources = Resources(memory_request="1Gi", memory_limit="3Gi")

    @model_validator(mode="after")
    def _check_bounds(self) -> IngestWorkerConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})"
            )
        return self


class RedisConfig(ConfigModel):
    image: PinnedImage = REDIS_IMAGE
    volume_size: Quantity = "2Gi"
    resources: Resources = Resources(memory_request="128Mi", memory_limit="512Mi", cpu_limit="500m")


class ChromaConfig(ConfigModel):
    """No `image`: Chroma runs chromadb's Python server from the service image (stores.py)."""

    volume_size: Quantity = "10Gi"
    resources: Resources = Resources(memory_request="512Mi", memory_limit="2Gi")


class DocumentsConfig(ConfigModel):
    """The shared ReadWriteMany volume holding uploaded files (DOCUMENTS_PATH)."""

    volume_size: Quantity = "5Gi"  # on the platform's sharedStorageClass (ReadWriteMany)


class TokenPrices(ConfigModel):
    """`flowchat:tokenPrices`: what Flow charges per 1000 tokens (USD), for the dashboard's cost
    estimate only. Defaults: the list prices of the default model gpt-4o-mini (0.15 and 0.60
    USD per million prompt / completion tokens); set the stack's contract prices."""

    prompt: Annotated[float, Field(ge=0)] = 0.00015
    completion: Annotated[float, Field(ge=0)] = 0.0006


class FlowConfig(ConfigModel):
    base_url: str = "https://flow.ciandt.com"
    app_to_access: str = "llm-api"
    model: str = "gpt-4o-mini"

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


# Settings the stack derives itself (service URLs, secrets, the queue): never in `env`.
STACK_OWNED_ENV = frozenset(
    {
        "REDIS_URL",
        "CHROMA_URL",
        "RQ_QUEUE",
        "FLOW_BASE_URL",
        "FLOW_APP_TO_ACCESS",
        "FLOW_MODEL",
        "DOCUMENTS_PATH",
        "MAX_QUEUE_DEPTH",
        "API_KEYS",
        "API_KEYS_FILE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",  # flowchat:otlpEndpoint (it also opens the egress)
        "WORKER_THREADS",  # flowchat:worker.threadsPerPod (KEDA's targets derive from it)
    }
)
FORBIDDEN_ENV = {
    "ALLOW_ANONYMOUS_CHAT": "never set in a stack: a deployed API refuses chat without a key",
}


def validate_app_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` entries are app.core.settings.Settings fields with values Settings accepts."""
    from app.core.settings import Settings  # the service's own settings model

    problems = []
    for name in env:
        if name in FORBIDDEN_ENV:
            problems.append(f"{name} is {FORBIDDEN_ENV[name]}")
        elif name in STACK_OWNED_ENV:
            problems.append(f"{name} is set by the stack itself")
        elif name not in Settings.model_fields:
            problems.append(f"{name} is not an app setting (app.core.settings.Settings)")
        elif "SecretStr" in str(Settings.model_fields[name].annotation):
            problems.append(f"{name} is a secret: it comes from the secret manager")
    if problems:
        raise ValueError("; ".join(problems))
    try:
        Settings.model_validate(dict(env))
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    return dict(env)
