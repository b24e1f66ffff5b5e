"""The `flowchat-runbook` policy pack's registry: which rule enforces what, at which level.

The validators live in one module per runbook area (probes, alert thresholds, routing, workloads,
secret sources); every number in a description comes from `thresholds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from . import alert_thresholds, probes, routing, secret_sources, workloads
from . import thresholds as t
from .common import CONFIG, _num, schema

PACK_NAME = "flowchat-runbook"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    validate: Callable[..., None]
    stack: bool = False
    level: EnforcementLevel = EnforcementLevel.MANDATORY


_VOLUME_PERCENT = _num(t.VOLUME_USAGE_RATIO * 100)
RULES: tuple[Rule, ...] = (
    Rule(
        "api-liveness-probe",
        f"The API liveness probe polls {t.PING_PATH} every <= {t.HEALTH_PROBE_INTERVAL_SECONDS} s "
        f"and fails after <= {t.HEALTH_PROBE_FAILURES} misses.",
        probes.validate_api_liveness_probe,
    ),
    Rule(
        "health-probe",
        f"A blackbox Probe (jobName {t.HEALTH_PROBE_JOB}) polls {t.PING_PATH} every "
        f"<= {t.HEALTH_PROBE_INTERVAL_SECONDS} s.",
        probes.validate_health_probe,
        stack=True,
    ),
    Rule(
        "health-alert",
        f"The health alert fires below a {t.METRIC_PROBE_SUCCESS} threshold in (0, 1] after "
        f"<= {t.HEALTH_PROBE_FAILURES} consecutive failed probes (window, for and the rule "
        "group's evaluation interval counted).",
        probes.validate_health_alert,
        stack=True,
    ),
    Rule(
        "queue-depth-alert",
        f"A queue-depth alert on {t.QUEUE_NAME} fires above <= {t.QUEUE_DEPTH_THRESHOLD} queued "
        f"jobs held for <= {t.QUEUE_DEPTH_FOR}.",
        alert_thresholds.validate_queue_depth_alert,
        stack=True,
    ),
    Rule(
        "chat-latency-alert",
        f"A P95 end-to-end chat latency alert fires above <= {_num(t.CHAT_LATENCY_P95_SECONDS)} s.",
        alert_thresholds.validate_chat_latency_alert,
        stack=True,
    ),
    Rule(
        "chroma-volume-alert",
        f"The Chroma PVC has a usage alert (<= {_VOLUME_PERCENT} % full) and a fill-forecast "
        f"alert looking >= {t.VOLUME_FILL_FORECAST_HOURS} h ahead.",
        alert_thresholds.validate_chroma_volume_alert,
        stack=True,
    ),
    Rule(
        "persistent-volumes",
        "Redis and Chroma are StatefulSets keeping their data on volumeClaimTemplates.",
        workloads.validate_persistent_volumes,
    ),
    Rule(
        "ingest-backlog-alert",
        f"An ingestion-backlog alert on {t.INGEST_QUEUE_NAME} (uploads waiting) fires above "
        f"<= {t.INGEST_QUEUE_DEPTH_THRESHOLD} queued jobs held for <= {t.INGEST_QUEUE_DEPTH_FOR}; "
        "no queued-jobs alert mixes the chat and ingestion queues.",
        alert_thresholds.validate_ingest_backlog_alert,
        stack=True,
    ),
    Rule(
        "redis-memory-alert",
        f"A Redis memory alert fires above <= {_num(t.REDIS_MEMORY_RATIO * 100)} % of maxmemory.",
        alert_thresholds.validate_redis_memory_alert,
        stack=True,
    ),
    Rule(
        "downvote-alert",
        f"A down-vote alert fires above <= {_num(t.DOWNVOTE_RATIO * 100)} % down-votes, only with "
        f"a minimum of 2 to {t.DOWNVOTE_MIN_VOTES} votes (one vote never pages).",
        alert_thresholds.validate_downvote_alert,
        stack=True,
    ),
    Rule(
        "flow-token-budget-alert",
        f"A daily Flow-token alert on {t.METRIC_FLOW_TOKENS} fires above <= "
        f"{t.FLOW_TOKENS_DAILY_BUDGET:,} tokens.",
        alert_thresholds.validate_flow_token_budget_alert,
        stack=True,
    ),
    Rule(
        "alert-routing",
        "Every alert rule routes itself (notificationSettings.contactPoint) to a contact point "
        "of the stack and carries service=flowchat and stack=<stack>; no org-wide "
        "NotificationPolicy.",
        routing.validate_alert_routing,
        stack=True,
    ),
    Rule(
        "severity-routes",
        "Every alert's severity has a route: one contact point per severity; severities other "
        f"than {', '.join(t.PAGING_SEVERITIES)} never route to a PagerDuty contact point (even "
        "the stack's only one); with both a PagerDuty and a chat contact point, "
        f"{', '.join(t.PAGING_SEVERITIES)} alerts page.",
        routing.validate_severity_routes,
        stack=True,
    ),
    Rule(
        "api-key-source",
        f"When an Ingress exposes {t.API_DEPLOYMENT}, the API gets its keys from a Secret "
        f"({t.API_KEYS_FILE_ENV} in a mounted Secret volume or {t.API_KEYS_ENV} from a "
        f"secretKeyRef) and never sets {t.ALLOW_ANONYMOUS_CHAT_ENV}=true.",
        workloads.validate_api_key_source,
        stack=True,
    ),
    Rule(
        "metrics-scraped",
        f"A Prometheus Operator ServiceMonitor scrapes {t.METRICS_PATH} from the API Service.",
        probes.validate_metrics_scraped,
        stack=True,
    ),
    Rule(
        "flow-credentials-from-secret-manager",
        f"{', '.join(t.SECRET_KEYS)} come only from the secret manager (secretKeyRef to the "
        "ExternalSecret's Secret; no literal env values, no ConfigMap or literal Secret keys).",
        secret_sources.validate_flow_credentials,
    ),
    Rule(
        "container-baseline",
        "Containers run as non-root with CPU and memory limits and pinned image tags.",
        workloads.validate_container_baseline,
        level=EnforcementLevel.ADVISORY,
    ),
)
assert {rule.name for rule in RULES} == set(CONFIG), "every rule has a config entry"


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    built: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for rule in RULES:
        cls = StackValidationPolicy if rule.stack else ResourceValidationPolicy
        built.append(
            cls(
                name=rule.name,
                description=rule.description,
                validate=rule.validate,
                enforcement_level=rule.level,
                config_schema=schema(rule.name),
            )
        )
    return built
