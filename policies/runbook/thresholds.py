"""The runbook's shared names, thresholds and alert windows: the ONE typed place they are written.

Dependency-free (standard library only) so that it ships inside the policy pack (`pulumi policy
publish policies/` packs this directory; the pack imports it as `runbook.thresholds`) and is
importable by everything else as `policies.runbook.thresholds`:

- `app.contracts` re-exports the names and thresholds the service uses;
- `stacks.alerts` builds every alert from `ALERTS` (name, runbook anchor, severity, `for`, window)
  and the threshold defaults below, and the dashboard reuses the alerts' queries;
- the policy pack takes its bounds (the defaults of its config schema) and its rule text from here.

Thresholds are the runbook's defaults; a stack may only tighten them (the pack enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# --- names ------------------------------------------------------------------------------------
APP_NAME: Final = "flowchat"
QUEUE_NAME: Final = "flow_tasks"  # chat jobs
# ingestion (uploads and rebuilds) never shares the chat queue or its workers
INGEST_QUEUE_NAME: Final = "flow_ingest"
PING_PATH: Final = "/api/health/ping"
METRICS_PATH: Final = "/metrics"
API_DEPLOYMENT: Final = "flowchat-api"
EXTERNAL_SECRET: Final = "flowchat-flow-credentials"  # ExternalSecret and the Secret it makes
HEALTH_PROBE_JOB: Final = "flowchat-health"

# --- secrets ----------------------------------------------------------------------------------
FLOW_SECRET_NAMES: Final = ("FLOW_AGENT", "FLOW_TENANT", "FLOW_AGENT_SECRET")
ADMIN_TOKEN_SECRET: Final = "ADMIN_TOKEN"
SECRET_KEYS: Final = (*FLOW_SECRET_NAMES, ADMIN_TOKEN_SECRET)  # the ExternalSecret's keys
API_KEYS_SECRET: Final = "API_KEYS"  # chat API keys, one per line, delivered as a mounted file
# where the API reads its keys in a pod (re-read at request time: revocation needs no restart)
API_KEYS_FILE_IN_POD: Final = "/var/run/secrets/flowchat/api-keys"
# the API's environment: a key source is API_KEYS_FILE (a mounted Secret) or API_KEYS (secretKeyRef)
API_KEYS_FILE_ENV: Final = "API_KEYS_FILE"
API_KEYS_ENV: Final = "API_KEYS"
ALLOW_ANONYMOUS_CHAT_ENV: Final = "ALLOW_ANONYMOUS_CHAT"

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
QUEUE_DEPTH_THRESHOLD: Final = 20  # alert when more than 20 chat jobs wait ...
QUEUE_DEPTH_FOR: Final = "5m"  # ... for more than 5 minutes
CHAT_LATENCY_P95_SECONDS: Final = 10.0  # alert when P95 end-to-end latency exceeds 10 s
VOLUME_USAGE_RATIO: Final = 0.80  # Chroma volume: alert at 80 % full
VOLUME_FILL_FORECAST_HOURS: Final = 24  # ... or when it will be full within 24 h at this rate
QUEUE_DRAIN_SECONDS: Final = 120  # after a worker restart the backlog drains within 2 minutes
MESSAGE_DELAY_SECONDS: Final = 20.0  # "messages delayed > 20 s" troubleshooting row
FLOW_ERROR_RATIO: Final = 0.2  # "500 from /chat/completions": alert above 20 % Flow 5xx
EMPTY_ANSWER_RATIO: Final = 0.3  # "empty LLM responses": alert above 30 % empty answers
REDIS_MEMORY_RATIO: Final = 0.8  # Redis: warn above 80 % of maxmemory (then evictions/OOM)
# uploads waiting: ingestion is slow by nature (OCR, embeddings), so its bound is its own
INGEST_QUEUE_DEPTH_THRESHOLD: Final = 50  # alert when more than 50 ingestion jobs wait ...
INGEST_QUEUE_DEPTH_FOR: Final = "15m"  # ... for more than 15 minutes
DOWNVOTE_RATIO: Final = 0.3  # alert when over 30 % of votes in the window are down-votes ...
DOWNVOTE_MIN_VOTES: Final = 20  # ... and at least 20 votes were cast (one vote never pages)
# Flow bills by the token: warn when the last 24 h of prompt + completion tokens (all keys)
# exceed this (~3,500 a minute all day; a stack sets its own, never higher)
FLOW_TOKENS_DAILY_BUDGET: Final = 5_000_000

Group = Literal["monitoring", "troubleshooting"]
Severity = Literal["critical", "warning"]
# Runbook "Escalation": these severities page (PagerDuty: backend on call, then DevOps); the
# others go to the stack's chat contact point (stacks.escalation.SEVERITY_ROUTES derives from it).
PAGING_SEVERITIES: Final[tuple[Severity, ...]] = ("critical",)
# The incident priority an alert's `ops.incident open` line starts with (re-rate with `update`).
ALERT_PRIORITY: Final[dict[str, str]] = {"critical": "P1", "warning": "P3"}


@dataclass(frozen=True)
class AlertSpec:
    """What every part says about one alert: its runbook heading, severity, rule group, how long
    the condition must hold (`for_`) and the range it looks back over (`window`, if any)."""

    name: str
    anchor: str  # heading anchor in docs/runbook.md ("### Queue backlog" -> "queue-backlog")
    severity: Severity
    group: Group
    for_: str  # Prometheus duration; "0s" fires on the first evaluation
    window: str | None = None  # range of rate()/predict_linear(), e.g. "5m"


_SPECS: Final = (
    AlertSpec("FlowchatHealthCheckFailing", "health-check-failing", "critical", "monitoring", "0s"),
    AlertSpec("FlowchatQueueBacklog", "queue-backlog", "warning", "monitoring", QUEUE_DEPTH_FOR),
    AlertSpec(
        "FlowchatChatLatencyP95High", "chat-latency-p95-high", "warning", "monitoring", "5m", "5m"
    ),
    AlertSpec(
        "FlowchatVectorStoreVolumeFilling",
        "vector-store-volume-filling",
        "warning",
        "monitoring",
        "5m",
    ),
    AlertSpec(
        "FlowchatVectorStoreVolumeFullSoon",
        "vector-store-volume-full-soon",
        "warning",
        "monitoring",
        "30m",
        "6h",
    ),
    AlertSpec(
        "FlowchatIngestBacklog",
        "ingestion-backlog",
        "warning",
        "monitoring",
        INGEST_QUEUE_DEPTH_FOR,
    ),
    AlertSpec("FlowchatRedisMemoryHigh", "redis-memory-high", "warning", "monitoring", "5m"),
    AlertSpec("FlowchatWorkersDown", "workers-down", "critical", "troubleshooting", "2m"),
    AlertSpec("FlowchatRedisUnreachable", "redis-unreachable", "critical", "troubleshooting", "2m"),
    AlertSpec("FlowchatFlowErrors", "flow-errors", "critical", "troubleshooting", "5m", "5m"),
    AlertSpec("FlowchatEmptyAnswers", "empty-answers", "warning", "troubleshooting", "15m", "15m"),
    AlertSpec("FlowchatDownVotes", "down-votes", "warning", "troubleshooting", "30m", "1h"),
    # the nightly answer evaluation (ops.evaluate) pushes its scores once a day: compared with
    # their best over a week, firing at once (the pushed value stays until the next run)
    AlertSpec(
        "FlowchatAnswerQualityDropped",
        "answer-quality-dropped",
        "warning",
        "troubleshooting",
        "0s",
        "7d",
    ),
    # ... and when no run has pushed for `window` (the schedule is daily: two nights missed), the
    # scores above are stale and the drop alert compares old numbers
    AlertSpec(
        "FlowchatAnswerEvaluationStale",
        "answer-evaluation-stale",
        "warning",
        "troubleshooting",
        "0s",
        "2d",
    ),
    AlertSpec(
        "FlowchatFlowTokenBudget",
        "daily-flow-tokens-over-budget",
        "warning",
        "monitoring",
        "10m",
        "24h",
    ),
)
ALERTS: Final[dict[str, AlertSpec]] = {spec.name: spec for spec in _SPECS}
# alert name -> heading anchor in docs/runbook.md
RUNBOOK_ANCHORS: Final[dict[str, str]] = {spec.name: spec.anchor for spec in _SPECS}
