"""Names and thresholds that several parts of the repository share.

The service, the Pulumi stacks, the alert rules, the policy pack, the ops commands and the
workflows all import these values from here (or a test checks that they agree), so a name or a
runbook threshold is written exactly once. See ../shared/DESIGN.md, "Contracts".
"""

from __future__ import annotations

from typing import Final

# --- queue -----------------------------------------------------------------------------------
QUEUE_NAME: Final = "flow_tasks"
QUEUE_KEY: Final = f"rq:queue:{QUEUE_NAME}"  # the Redis list whose length is the queue depth
CHAT_JOB: Final = "app.worker.answer_chat"
# ingestion (uploads and rebuilds) never shares the chat queue or its workers
INGEST_QUEUE_NAME: Final = "flow_ingest"
INGEST_QUEUE_KEY: Final = f"rq:queue:{INGEST_QUEUE_NAME}"

# --- HTTP -------------------------------------------------------------------------------------
PING_PATH: Final = "/api/health/ping"
READY_PATH: Final = "/api/health/ready"
STATUS_PATH: Final = "/api/status"
CHAT_PATH: Final = "/api/chat"
DOCUMENTS_PATH: Final = "/api/documents"
INGEST_PATH: Final = "/api/documents/ingest"
METRICS_PATH: Final = "/metrics"
DEFAULT_PORT: Final = 8000

# --- metrics (names used by alerts, dashboards, KEDA and the policy pack) ----------------------
METRIC_RQ_JOBS: Final = "rq_jobs"  # labels: queue, status
METRIC_RQ_WORKERS: Final = "rq_workers"  # labels: queue
METRIC_CHAT_LATENCY: Final = "flowchat_chat_latency_seconds"  # histogram
METRIC_FLOW_REQUESTS: Final = "flowchat_flow_requests_total"  # counter, label: status
METRIC_FLOW_REQUEST_SECONDS: Final = "flowchat_flow_request_seconds"  # histogram
METRIC_VECTOR_STORE_BYTES: Final = "flowchat_vector_store_bytes"  # gauge
METRIC_EMPTY_ANSWERS: Final = "flowchat_empty_answers_total"  # counter
METRIC_CHAT_ANSWERS: Final = "flowchat_chat_answers_total"  # counter, label: outcome
METRIC_PROBE_SUCCESS: Final = "probe_success"  # from the blackbox exporter
METRIC_KUBELET_VOLUME_USED_BYTES: Final = "kubelet_volume_stats_used_bytes"  # from the kubelet
METRIC_KUBELET_VOLUME_CAPACITY_BYTES: Final = "kubelet_volume_stats_capacity_bytes"
HEALTH_PROBE_JOB: Final = "flowchat-health"
METRIC_CHAT_FIRST_TOKEN: Final = "flowchat_chat_first_token_seconds"  # histogram
METRIC_FEEDBACK: Final = "flowchat_feedback_total"  # counter, label: vote (up|down)
METRIC_RATE_LIMITED: Final = "flowchat_rate_limited_total"  # counter, label: reason
METRIC_REDIS_MEMORY_USED_BYTES: Final = "flowchat_redis_memory_used_bytes"  # gauge (INFO memory)
METRIC_REDIS_MEMORY_MAX_BYTES: Final = "flowchat_redis_memory_max_bytes"  # gauge (maxmemory)
# counter, labels: kind (prompt|completion), key (hashed API key id or "anonymous"; one series
# per configured key, so bounded by the stack's key list)
METRIC_FLOW_TOKENS: Final = "flowchat_flow_tokens_total"

# --- runbook thresholds (defaults; stacks may only tighten them, the policy pack enforces) -----
HEALTH_PROBE_INTERVAL_SECONDS: Final = 30  # poll /api/health/ping every 30 s
HEALTH_PROBE_FAILURES: Final = 2  # alert after two consecutive failures
QUEUE_DEPTH_THRESHOLD: Final = 20  # alert when more than 20 jobs wait ...
QUEUE_DEPTH_FOR: Final = "5m"  # ... for more than 5 minutes
CHAT_LATENCY_P95_SECONDS: Final = 10.0  # alert when P95 end-to-end latency exceeds 10 s
VOLUME_USAGE_RATIO: Final = 0.80  # Chroma volume: alert at 80 % full
VOLUME_FILL_FORECAST_HOURS: Final = 24  # ... or when it will be full within 24 h at this rate
QUEUE_DRAIN_SECONDS: Final = 120  # after a worker restart the backlog drains within 2 minutes
MESSAGE_DELAY_SECONDS: Final = 20.0  # "messages delayed > 20 s" troubleshooting row
FLOW_ERROR_RATIO: Final = 0.2  # "500 from /chat/completions": alert above 20 % Flow 5xx
EMPTY_ANSWER_RATIO: Final = 0.3  # "empty LLM responses": alert above 30 % empty answers

# --- Flow credentials (secret manager entry names) --------------------------------------------
FLOW_SECRET_NAMES: Final = ("FLOW_AGENT", "FLOW_TENANT", "FLOW_AGENT_SECRET")
ADMIN_TOKEN_SECRET: Final = "ADMIN_TOKEN"
API_KEYS_SECRET: Final = "API_KEYS"  # chat API keys, one per line, delivered as a mounted file
REDIS_PASSWORD_SECRET: Final = "REDIS_PASSWORD"  # every Redis client and redis-server itself
# where the API reads its keys in a pod (re-read at request time: revocation needs no restart)
API_KEYS_FILE_IN_POD: Final = "/var/run/secrets/flowchat/api-keys"

# --- deployed names (Kubernetes objects and secret-manager entries) ---------------------------
APP_NAME: Final = "flowchat"
API_DEPLOYMENT: Final = "flowchat-api"
WORKER_DEPLOYMENT: Final = "flowchat-worker"
INGEST_WORKER_DEPLOYMENT: Final = "flowchat-ingest-worker"
EXTERNAL_SECRET: Final = "flowchat-flow-credentials"  # ExternalSecret and the Secret it makes
CHROMA_STATEFULSET: Final = "flowchat-chroma"
CHROMA_PVC: Final = f"data-{CHROMA_STATEFULSET}-0"  # claim template "data", first replica
SECRET_KEYS: Final = (*FLOW_SECRET_NAMES, ADMIN_TOKEN_SECRET)
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
    if key not in SECRET_KEYS:
        raise ValueError(f"unknown secret key {key!r}; expected one of {', '.join(SECRET_KEYS)}")
    if cloud == "aws":
        return f"{APP_NAME}/{stack}/{key}"
    if cloud == "azure":
        return key.lower().replace("_", "-")
    raise ValueError(f"unknown cloud {cloud!r}; expected 'aws' or 'azure'")


def key_vault_name(stack: str) -> str:
    """Azure Key Vault of a stack (3-24 characters, letters, digits and dashes)."""
    return f"{APP_NAME}-{stack}-kv"[:24]
