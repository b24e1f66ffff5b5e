"""Names and thresholds that several parts of the repository share.

The runbook's thresholds and alert windows, the metric names and the names the policy pack checks
are defined once in `policies.runbook.thresholds` (dependency-free, so the policy pack ships it)
and re-exported here unchanged; the names only the service and the stacks use live below.

The service, the Pulumi stacks, the alert rules, the policy pack, the ops commands and the
workflows all import these values from here (or a test checks that they agree), so a name or a
runbook threshold is written exactly once. See ../shared/DESIGN.md, "Contracts".
"""

from __future__ import annotations

import re
from typing import Final

from policies.runbook.thresholds import (  # noqa: F401  (re-exported: the shared names)
    ADMIN_TOKEN_SECRET,
    API_DEPLOYMENT,
    API_KEYS_FILE_IN_POD,
    API_KEYS_SECRET,
    APP_NAME,
    CHAT_LATENCY_P95_SECONDS,
    EMPTY_ANSWER_RATIO,
    EXTERNAL_SECRET,
    FLOW_ERROR_RATIO,
    FLOW_SECRET_NAMES,
    FLOW_TOKENS_DAILY_BUDGET,
    HEALTH_PROBE_FAILURES,
    HEALTH_PROBE_INTERVAL_SECONDS,
    HEALTH_PROBE_JOB,
    INGEST_QUEUE_NAME,
    MESSAGE_DELAY_SECONDS,
    METRIC_CHAT_ANSWERS,
    METRIC_CHAT_FIRST_TOKEN,
    METRIC_CHAT_LATENCY,
    METRIC_EMPTY_ANSWERS,
    METRIC_FEEDBACK,
    METRIC_FLOW_REQUEST_SECONDS,
    METRIC_FLOW_REQUESTS,
    METRIC_FLOW_TOKENS,
    METRIC_KUBELET_VOLUME_CAPACITY_BYTES,
    METRIC_KUBELET_VOLUME_USED_BYTES,
    METRIC_PROBE_SUCCESS,
    METRIC_RATE_LIMITED,
    METRIC_REDIS_MEMORY_MAX_BYTES,
    METRIC_REDIS_MEMORY_USED_BYTES,
    METRIC_RQ_JOBS,
    METRIC_RQ_WORKERS,
    METRIC_VECTOR_STORE_BYTES,
    METRICS_PATH,
    PING_PATH,
    QUEUE_DEPTH_FOR,
    QUEUE_DEPTH_THRESHOLD,
    QUEUE_DRAIN_SECONDS,
    QUEUE_NAME,
    SECRET_KEYS,
    VOLUME_FILL_FORECAST_HOURS,
    VOLUME_USAGE_RATIO,
)

# --- queue -----------------------------------------------------------------------------------
QUEUE_KEY: Final = f"rq:queue:{QUEUE_NAME}"  # the Redis list whose length is the queue depth
CHAT_JOB: Final = "app.worker.answer_chat"
INGEST_QUEUE_KEY: Final = f"rq:queue:{INGEST_QUEUE_NAME}"
# RQ work loops (chats in flight) per chat worker process (WORKER_THREADS, app.worker.threads);
# a chat worker pod runs one such process (the stacks' worker.threadsPerPod)
DEFAULT_WORKER_THREADS: Final = 32
MAX_WORKER_THREADS: Final = 256
# every worker beats ALIVE_PREFIX + <worker name> (TTL ALIVE_TTL_SECONDS): the sweep of abandoned
# jobs, the workers' liveness probe (app.worker.probe) and the API's readiness read these keys
ALIVE_PREFIX: Final = "flowchat:worker-alive:"
ALIVE_TTL_SECONDS: Final = 15

# --- answers ----------------------------------------------------------------------------------
# what the service answers when its documents do not answer a question: the worker sends it
# without calling Flow when retrieval finds nothing relevant (app.rag.retrieval), the system
# prompt tells the model to answer exactly this, the Flow emulator answers it, and
# ops.evaluate counts it as a refusal
REFUSAL_ANSWER: Final = "I could not find this in the provided documents."

# the answer evaluation (ops.evaluate): its scores as metrics (pushed by the scheduled run,
# label `score`), and how far a score (0-1) may fall below the baseline or its 7-day best
METRIC_EVAL_SCORE: Final = "flowchat_eval_score"
METRIC_EVAL_LAST_RUN: Final = "flowchat_eval_last_run_timestamp_seconds"  # when it last pushed
EVAL_PUSH_JOB: Final = "flowchat-eval"
EVAL_DROP_TOLERANCE: Final = 0.05

# --- HTTP -------------------------------------------------------------------------------------
READY_PATH: Final = "/api/health/ready"
STATUS_PATH: Final = "/api/status"
CHAT_PATH: Final = "/api/chat"
DOCUMENTS_PATH: Final = "/api/documents"
INGEST_PATH: Final = "/api/documents/ingest"
DEFAULT_PORT: Final = 8000
METRICS_PORT: Final = 9464  # the API's /metrics listener in the stacks (METRICS_PORT setting)

# --- secrets (metrics, thresholds and the Flow credential names: policies.runbook.thresholds) --
REDIS_PASSWORD_SECRET: Final = "REDIS_PASSWORD"  # every Redis client and redis-server itself
KEY_ID_SECRET_KEY: Final = "KEY_ID_SECRET"  # key ids are HMACs under it (app.access.keys)


# Chroma's token (issue 18): every Chroma client sends it (`Authorization: Bearer`), the server
# requires it. chromadb's Python server (`uvicorn chromadb.app:app`) enforces it when given these
# two variables; the Rust server of `chroma run` and of the chromadb/chroma 1.x image ignores them.
CHROMA_TOKEN_SECRET: Final = "CHROMA_TOKEN"
CHROMA_SERVER_APP: Final = "chromadb.app:app"
CHROMA_AUTHN_PROVIDER_ENV: Final = "CHROMA_SERVER_AUTHN_PROVIDER"
CHROMA_AUTHN_CREDENTIALS_ENV: Final = "CHROMA_SERVER_AUTHN_CREDENTIALS"
CHROMA_AUTHN_PROVIDER: Final = "chromadb.auth.token_authn.TokenAuthenticationServerProvider"
# What else the Chroma server's environment holds, wherever it runs (`make run`, the stacks):
# no product telemetry, and requests not traced by the OpenTelemetry FastAPI middleware chromadb
# installs on every request. It exports nothing unless Chroma's own OTel endpoint is set, yet it
# matched each request's route and built a span: ~15 % of the server's CPU per query
# (docs/performance.md). The service traces its Chroma calls client side ("chroma query").
CHROMA_SERVER_ENV: Final = {
    "ANONYMIZED_TELEMETRY": "FALSE",
    "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": ".*",
}

# --- Redis durability (issue 18) --------------------------------------------------------------
# Redis writes and fsyncs the AOF before it answers a write (`always`): the enqueue that a 202
# acknowledges survives a SIGKILL of redis-server and a crash of its node. `everysec` answers
# before writing when an fsync is still running (a busy disk), and a crash loses those writes.
# Redis 7.2's WAITAOF would make only the enqueue wait, but Debian's redis-server here is 7.0.
REDIS_APPENDFSYNC: Final = "always"
REDIS_AOF_ARGS: Final = ("--appendonly", "yes", "--appendfsync", REDIS_APPENDFSYNC)

# --- deployed names (Kubernetes objects and secret-manager entries) ---------------------------
WORKER_DEPLOYMENT: Final = "flowchat-worker"
INGEST_WORKER_DEPLOYMENT: Final = "flowchat-ingest-worker"
CHROMA_STATEFULSET: Final = "flowchat-chroma"
CHROMA_PVC: Final = f"data-{CHROMA_STATEFULSET}-0"  # claim template "data", first replica
# every secret-manager entry a stack delivers through External Secrets (SECRET_KEYS + issue 10's)
STACK_SECRET_KEYS: Final = (
    *SECRET_KEYS,
    API_KEYS_SECRET,
    REDIS_PASSWORD_SECRET,
    KEY_ID_SECRET_KEY,
    CHROMA_TOKEN_SECRET,
)
# the value a secret-manager entry holds until ops.rotate_credentials writes a real one; the
# service treats it as "not set" (an admin token equal to it never opens the admin routes)
SECRET_PLACEHOLDER: Final = "placeholder: run ops.rotate_credentials"
EXTERNAL_SECRETS_GROUP: Final = "external-secrets.io"
EXTERNAL_SECRETS_VERSION: Final = "v1"
EXTERNAL_SECRETS_API: Final = f"{EXTERNAL_SECRETS_GROUP}/{EXTERNAL_SECRETS_VERSION}"
# the pod-template annotation `kubectl rollout restart` sets; rotation and ops.worker set it too
RESTARTED_AT_ANNOTATION: Final = "kubectl.kubernetes.io/restartedAt"


def namespace_for(stack: str) -> str:
    """Kubernetes namespace of a stack."""
    return f"{APP_NAME}-{stack}"


def secret_entry_name(cloud: str, stack: str, key: str) -> str:
    """Name of the secret-manager entry holding ``key`` (e.g. FLOW_AGENT_SECRET) for a stack.

    AWS Secrets Manager takes ``flowchat/<stack>/FLOW_AGENT_SECRET``; Azure Key Vault names allow
    only letters, digits and dashes, so there it is ``flow-agent-secret`` in the stack's vault.
    """
    if key not in STACK_SECRET_KEYS:
        raise ValueError(
            f"unknown secret key {key!r}; expected one of {', '.join(STACK_SECRET_KEYS)}"
        )
    if cloud == "aws":
        return f"{APP_NAME}/{stack}/{key}"
    if cloud == "azure":
        return key.lower().replace("_", "-")
    raise ValueError(f"unknown cloud {cloud!r}; expected 'aws' or 'azure'")


def key_vault_name(stack: str) -> str:
    """Azure Key Vault of a stack (3-24 characters, letters, digits and dashes, ending in one).

    Long stack names are cut before the `-kv` suffix, never leaving a `-` at the end or `--`.
    """
    stem = re.sub(r"-+", "-", f"{APP_NAME}-{stack}")[:21].rstrip("-")
    return f"{stem}-kv"
