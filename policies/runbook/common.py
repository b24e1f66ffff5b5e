"""What every rule module of the pack shares: resource types, durations, the policy config (runbook
bounds from `thresholds`, which a stack's policy config may only tighten), Kubernetes helpers and
Grafana alert rules normalised into `Alert`s.

Policy config (`pulumi up --policy-pack-config`) may only tighten the runbook's numbers: the schema
bounds every value by the runbook's (`maximum` for a `max*` setting, `minimum` for a `min*` one),
and `settings()` clamps a looser value back to the runbook's, so a loosened config can never let a
weakened threshold pass (the Python analyzer does not validate config against the schema itself;
the clamp holds wherever the pack runs, including `stacks.preview`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs, StackValidationArgs

from . import thresholds

METRIC_VOLUME_USED = thresholds.METRIC_KUBELET_VOLUME_USED_BYTES
METRIC_VOLUME_CAPACITY = thresholds.METRIC_KUBELET_VOLUME_CAPACITY_BYTES

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
WORKLOADS = {
    DEPLOYMENT: "Deployment",
    STATEFUL_SET: "StatefulSet",
    "kubernetes:apps/v1:DaemonSet": "DaemonSet",
    "kubernetes:batch/v1:Job": "Job",
    "kubernetes:batch/v1:CronJob": "CronJob",
    "kubernetes:core/v1:Pod": "Pod",
}
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
PROBE = "kubernetes:monitoring.coreos.com/v1:Probe"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
RULE_GROUPS = {"grafana:alerting/ruleGroup:RuleGroup", "grafana:index/ruleGroup:RuleGroup"}
CONTACT_POINTS = {
    "grafana:alerting/contactPoint:ContactPoint",
    "grafana:index/contactPoint:ContactPoint",
}
NOTIFICATION_POLICIES = {
    "grafana:alerting/notificationPolicy:NotificationPolicy",
    "grafana:index/notificationPolicy:NotificationPolicy",
}
COMPONENT_LABELS = ("app.kubernetes.io/component", "component")
SERVICE_LABEL = ("service", thresholds.APP_NAME)
STACK_LABEL = "stack"  # every alert carries stack=<stack>; the notification policy matches it

# --- durations ---------------------------------------------------------------------------------
_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(value: Any) -> float:
    """Seconds in a Prometheus/Grafana duration ("5m", "1h30m"); numbers are seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text in {"", "0"}:
        return 0.0
    if not _DURATION.match(text):
        raise ValueError(f"not a duration: {value!r}")
    return float(sum(int(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text)))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# --- config ------------------------------------------------------------------------------------
# policy name -> config properties (JSON schema) with the runbook defaults.
CONFIG: dict[str, dict[str, dict[str, Any]]] = {
    "api-liveness-probe": {
        "maxPeriodSeconds": {
            "type": "integer",
            "default": thresholds.HEALTH_PROBE_INTERVAL_SECONDS,
        },
        "maxFailureThreshold": {"type": "integer", "default": thresholds.HEALTH_PROBE_FAILURES},
    },
    "health-probe": {
        "maxIntervalSeconds": {
            "type": "integer",
            "default": thresholds.HEALTH_PROBE_INTERVAL_SECONDS,
        },
    },
    "health-alert": {
        "maxConsecutiveFailures": {"type": "integer", "default": thresholds.HEALTH_PROBE_FAILURES},
        # assumed probe interval when no Probe says (a longer one would count fewer failures)
        "probeIntervalSeconds": {
            "type": "integer",
            "default": thresholds.HEALTH_PROBE_INTERVAL_SECONDS,
        },
    },
    "queue-depth-alert": {
        "maxQueueDepth": {"type": "integer", "default": thresholds.QUEUE_DEPTH_THRESHOLD},
        "maxFor": {"type": "string", "default": thresholds.QUEUE_DEPTH_FOR},
    },
    "chat-latency-alert": {
        "maxP95Seconds": {"type": "number", "default": thresholds.CHAT_LATENCY_P95_SECONDS},
    },
    "chroma-volume-alert": {
        "maxUsageRatio": {"type": "number", "default": thresholds.VOLUME_USAGE_RATIO},
        "minForecastHours": {"type": "number", "default": thresholds.VOLUME_FILL_FORECAST_HOURS},
    },
    "persistent-volumes": {},
    "alert-routing": {},
    "severity-routes": {
        # the severities that have a route: an alert with another severity reaches nobody
        "severities": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(get_args(thresholds.Severity)),
        },
        # severities that must reach a PagerDuty contact point when the stack has one
        "pagingSeverities": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(thresholds.PAGING_SEVERITIES),
        },
    },
    "flow-credentials-from-secret-manager": {},
    "container-baseline": {},
    "metrics-scraped": {},
    "ingest-backlog-alert": {
        "maxQueueDepth": {"type": "integer", "default": thresholds.INGEST_QUEUE_DEPTH_THRESHOLD},
        "maxFor": {"type": "string", "default": thresholds.INGEST_QUEUE_DEPTH_FOR},
    },
    "redis-memory-alert": {
        "maxUsageRatio": {"type": "number", "default": thresholds.REDIS_MEMORY_RATIO},
    },
    "downvote-alert": {
        "maxDownvoteRatio": {"type": "number", "default": thresholds.DOWNVOTE_RATIO},
        "maxMinVotes": {"type": "integer", "default": thresholds.DOWNVOTE_MIN_VOTES},
    },
    "flow-token-budget-alert": {
        "maxDailyTokens": {"type": "integer", "default": thresholds.FLOW_TOKENS_DAILY_BUDGET},
    },
    "api-key-source": {},
}
# Which way is stricter: "max" settings may only go down, "min" settings only up.
TIGHTEN: dict[str, str] = {
    "maxPeriodSeconds": "max",
    "maxFailureThreshold": "max",
    "maxIntervalSeconds": "max",
    "maxConsecutiveFailures": "max",
    "probeIntervalSeconds": "max",
    "maxQueueDepth": "max",
    "maxFor": "max",
    "maxP95Seconds": "max",
    "maxUsageRatio": "max",
    "minForecastHours": "min",
    "maxDownvoteRatio": "max",
    "maxMinVotes": "max",
    "maxDailyTokens": "max",
}
for _props in CONFIG.values():  # the schema states the bound too (the Pulumi CLI checks it)
    for _key, _prop in _props.items():
        if _prop["type"] == "array":  # sets of names: no numeric bound
            continue
        if _prop["type"] == "string":
            _prop["pattern"] = _DURATION.pattern
        else:
            _prop["maximum" if TIGHTEN[_key] == "max" else "minimum"] = _prop["default"]


def _clamp(key: str, value: Any, default: Any) -> Any:
    """`value` if it is at least as strict as the runbook's `default`, else `default`."""
    try:
        found, bound = seconds(value), seconds(default)
    except ValueError:
        return default
    if not math.isfinite(found) or found <= 0:
        return default
    stricter = found <= bound if TIGHTEN[key] == "max" else found >= bound
    return value if stricter else default


def settings(policy: str, args: ResourceValidationArgs | StackValidationArgs) -> dict[str, Any]:
    """The policy's config: the runbook defaults, tightened (never loosened) by the engine's."""
    merged = {key: prop["default"] for key, prop in CONFIG[policy].items()}
    for key, value in (args.get_config() or {}).items():
        if key in merged and isinstance(merged[key], list):
            if isinstance(value, list) and value:  # a stack's own set replaces the default
                merged[key] = [str(v) for v in value]
        elif key in merged:
            merged[key] = _clamp(key, value, merged[key])
    return merged


def schema(policy: str) -> PolicyConfigSchema | None:
    properties = CONFIG[policy]
    return PolicyConfigSchema(properties=properties) if properties else None


# --- Kubernetes helpers --------------------------------------------------------------------------
def _get(value: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(value, Mapping) and isinstance(key, str):
            value = value.get(key)
        elif isinstance(value, list | tuple) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


def k8s_name(props: Mapping[str, Any], fallback: str) -> str:
    return str(_get(props, "metadata", "name") or fallback)


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    if resource_type == "kubernetes:core/v1:Pod":
        spec = _get(props, "spec")
    elif resource_type == "kubernetes:batch/v1:CronJob":
        spec = _get(props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        spec = _get(props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return [c for c in found if isinstance(c, Mapping)]


def component(props: Mapping[str, Any]) -> str | None:
    """The workload's component label (app.kubernetes.io/component or component)."""
    for where in (("metadata", "labels"), ("spec", "template", "metadata", "labels")):
        labels = _get(props, *where) or {}
        for key in COMPONENT_LABELS:
            if isinstance(labels, Mapping) and labels.get(key):
                return str(labels[key])
    return None


def _is(props: Mapping[str, Any], name: str, what: str) -> bool:
    """Is this workload the `what` component? By its component label, else by its name."""
    label = component(props)
    return label == what if label else what in k8s_name(props, name).lower().split("-")


# --- alert rules (Grafana RuleGroups), normalised -----------------------------------------------
_TRAILING_COMPARISON = re.compile(r"(>=|>|<=|<|==|!=)\s*(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*$")
_OPS = {"gt": ">", "lt": "<", "ge": ">=", "le": "<="}


@dataclass
class Alert:
    """One alert rule of a RuleGroup: its PromQL and the comparison that fires it."""

    name: str
    group: str  # the RuleGroup's name
    urn: str
    query: str
    op: str | None  # ">", "<", ... (None: no threshold expression found)
    threshold: float | None
    for_seconds: float
    labels: dict[str, str] = field(default_factory=dict)
    group_interval_seconds: float = 60.0  # how often the RuleGroup evaluates (Grafana default 60)
    # the rule's own routing (notificationSettings.contactPoint); None: not routed per rule
    contact_point: str | None = None

    @property
    def where(self) -> str:
        return f"{self.name} in RuleGroup {self.group}"


def _model(data: Mapping[str, Any]) -> dict[str, Any]:
    model = data.get("model")
    if isinstance(model, str):
        try:
            model = json.loads(model)
        except json.JSONDecodeError:
            return {}
    return dict(model) if isinstance(model, Mapping) else {}


def rule_group_alerts(resource_name: str, props: Mapping[str, Any], urn: str) -> list[Alert]:
    group = str(props.get("name") or resource_name)
    try:
        every = seconds(props.get("intervalSeconds") or 60)
    except ValueError:
        every = math.inf
    alerts = []
    for rule in props.get("rules") or []:
        if not isinstance(rule, Mapping):
            continue
        query, op, threshold = "", None, None
        for data in rule.get("datas") or []:
            model = _model(data)
            if data.get("datasourceUid") != "__expr__" and "expr" in model:
                query = str(model["expr"])
            elif model.get("type") == "threshold":
                evaluator = _get(model, "conditions", 0, "evaluator") or {}
                params = evaluator.get("params") or []
                if evaluator.get("type") in _OPS and params:
                    op, threshold = _OPS[evaluator["type"]], float(params[0])
        trailing = _TRAILING_COMPARISON.search(query)
        if trailing:  # `q > 50` with threshold `> 0` fires above 50
            inner_op, inner = trailing.group(1), float(trailing.group(2))
            if op is None or (op.startswith(">") and inner_op.startswith(">")):
                op, threshold = inner_op, max(inner, threshold or -math.inf)
        try:
            for_seconds = seconds(rule.get("for") or "0s")
        except ValueError:
            for_seconds = math.inf
        labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
        routed = _get(rule, "notificationSettings", "contactPoint")
        alerts.append(
            Alert(
                str(rule.get("name")),
                group,
                urn,
                query,
                op,
                threshold,
                for_seconds,
                labels,
                every,
                str(routed) if routed else None,
            )
        )
    return alerts


def stack_alerts(resources: Iterable[Any]) -> list[Alert]:
    found = []
    for r in resources:
        if r.resource_type in RULE_GROUPS:
            found.extend(rule_group_alerts(r.name, r.props, r.urn))
    return found


def _selects(query: str, **matchers: str) -> bool:
    compact = query.replace(" ", "")
    return all(f'{k}="{v}"' in compact for k, v in matchers.items())
