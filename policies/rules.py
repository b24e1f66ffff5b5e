"""The rules of the `flowchat-runbook` policy pack: one validator function per rule.

Importable two ways: as `rules` when the Pulumi CLI runs the pack (`python -m pulumi.policy
<engine> policies/`: only the pack directory is on sys.path) and as `policies.rules` from tests.
Runbook numbers come from `app.contracts` (the pack runs in the project's virtualenv, where the
flowchat package is installed) and are the defaults of each policy's config schema. Policy config
(`pulumi up --policy-pack-config`) may only tighten them: the schema bounds every value by the
runbook's (`maximum` for a `max*` setting, `minimum` for a `min*` one), and `settings()` clamps a
looser value back to the runbook's, so a loosened config can never let a weakened threshold pass
(the Python analyzer does not validate config against the schema itself; the clamp holds wherever
the pack runs, including `stacks.preview`).

Every message names the resource, the value found and the bound, e.g. "queue-depth alert
FlowchatQueueBacklog in RuleGroup flowchat-monitoring: threshold 50 exceeds the runbook's bound
20".
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

try:
    from app import contracts
except ImportError:  # a checkout whose flowchat package is not installed: the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app import contracts

PACK_NAME = "flowchat-runbook"

METRIC_VOLUME_USED = contracts.METRIC_KUBELET_VOLUME_USED_BYTES
METRIC_VOLUME_CAPACITY = contracts.METRIC_KUBELET_VOLUME_CAPACITY_BYTES

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
SERVICE_LABEL = ("service", contracts.APP_NAME)
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
        "maxPeriodSeconds": {"type": "integer", "default": contracts.HEALTH_PROBE_INTERVAL_SECONDS},
        "maxFailureThreshold": {"type": "integer", "default": contracts.HEALTH_PROBE_FAILURES},
    },
    "health-probe": {
        "maxIntervalSeconds": {
            "type": "integer",
            "default": contracts.HEALTH_PROBE_INTERVAL_SECONDS,
        },
    },
    "health-alert": {
        "maxConsecutiveFailures": {"type": "integer", "default": contracts.HEALTH_PROBE_FAILURES},
        # assumed probe interval when no Probe says (a longer one would count fewer failures)
        "probeIntervalSeconds": {
            "type": "integer",
            "default": contracts.HEALTH_PROBE_INTERVAL_SECONDS,
        },
    },
    "queue-depth-alert": {
        "maxQueueDepth": {"type": "integer", "default": contracts.QUEUE_DEPTH_THRESHOLD},
        "maxFor": {"type": "string", "default": contracts.QUEUE_DEPTH_FOR},
    },
    "chat-latency-alert": {
        "maxP95Seconds": {"type": "number", "default": contracts.CHAT_LATENCY_P95_SECONDS},
    },
    "chroma-volume-alert": {
        "maxUsageRatio": {"type": "number", "default": contracts.VOLUME_USAGE_RATIO},
        "minForecastHours": {"type": "number", "default": contracts.VOLUME_FILL_FORECAST_HOURS},
    },
    "persistent-volumes": {},
    "alert-routing": {},
    "flow-credentials-from-secret-manager": {},
    "container-baseline": {},
    "metrics-scraped": {},
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
}
for _props in CONFIG.values():  # the schema states the bound too (the Pulumi CLI checks it)
    for _key, _prop in _props.items():
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
        if key in merged:
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
        alerts.append(
            Alert(
                str(rule.get("name")), group, urn, query, op, threshold, for_seconds, labels, every
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


# --- resource policies ---------------------------------------------------------------------------
def validate_api_liveness_probe(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """The API's liveness probe polls /api/health/ping every <= 30 s and fails after <= 2."""
    if args.resource_type not in WORKLOADS or not _is(args.props, args.name, "api"):
        return
    cfg = settings("api-liveness-probe", args)
    kind = WORKLOADS[args.resource_type]
    name = k8s_name(args.props, args.name)
    spec = pod_spec(args.resource_type, args.props)
    probed = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    probes = [(c, c.get("livenessProbe") or {}) for c in probed]
    pinging = [(c, p) for c, p in probes if _get(p, "httpGet", "path") == contracts.PING_PATH]
    if not pinging:
        paths = [str(_get(p, "httpGet", "path")) for _, p in probes if p]
        report(
            f"API {kind} {name}: no liveness probe on {contracts.PING_PATH} "
            f"(found: {', '.join(paths) or 'none'})",
            None,
        )
        return
    for container, probe in pinging:
        where = f"API {kind} {name}: container {container.get('name')} liveness probe"
        period = probe.get("periodSeconds", 10)  # Kubernetes defaults
        failures = probe.get("failureThreshold", 3)
        if float(period) > float(cfg["maxPeriodSeconds"]):
            report(
                f"{where} periodSeconds {_num(period)} exceeds the runbook's bound "
                f"{_num(cfg['maxPeriodSeconds'])}",
                None,
            )
        if float(failures) > float(cfg["maxFailureThreshold"]):
            unset = "" if "failureThreshold" in probe else " (unset: Kubernetes uses 3)"
            report(
                f"{where} failureThreshold {_num(failures)}{unset} exceeds the runbook's bound "
                f"{_num(cfg['maxFailureThreshold'])}",
                None,
            )


def validate_persistent_volumes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Redis and Chroma keep their data on a volumeClaimTemplate of a StatefulSet."""
    if args.resource_type not in WORKLOADS:
        return
    which = [w for w in ("redis", "chroma") if _is(args.props, args.name, w)]
    if not which:
        return
    what = which[0].capitalize()
    kind = WORKLOADS[args.resource_type]
    name = k8s_name(args.props, args.name)
    if args.resource_type != STATEFUL_SET:
        report(
            f"{what} runs as {kind} {name}: it must be a StatefulSet with a volumeClaimTemplate "
            "so its data survives restarts",
            None,
        )
        return
    templates = [
        str(_get(t, "metadata", "name"))
        for t in _get(args.props, "spec", "volumeClaimTemplates") or []
    ]
    spec = pod_spec(args.resource_type, args.props)
    empty_dirs = {
        str(v.get("name"))
        for v in spec.get("volumes") or []
        if isinstance(v, Mapping) and "emptyDir" in v
    }
    mounts = [
        (str(m.get("name")), str(m.get("mountPath")))
        for c in containers(spec)
        for m in c.get("volumeMounts") or []
        if isinstance(m, Mapping)
    ]
    for volume, path in mounts:
        if volume in empty_dirs and not path.startswith("/tmp"):
            report(
                f"{what} StatefulSet {name}: volume {volume} mounted at {path} is an emptyDir; "
                "data must live on a volumeClaimTemplate",
                None,
            )
    if not templates:
        report(f"{what} StatefulSet {name}: no volumeClaimTemplates (found none, need 1)", None)
    elif not any(volume in templates for volume, _ in mounts):
        report(
            f"{what} StatefulSet {name}: no container mounts the volumeClaimTemplate "
            f"{', '.join(templates)}",
            None,
        )


def _env_problems(kind: str, name: str, spec: Mapping[str, Any]) -> list[str]:
    problems = []
    for container in containers(spec):
        for env in container.get("env") or []:
            if not isinstance(env, Mapping) or env.get("name") not in contracts.SECRET_KEYS:
                continue
            where = f"{kind} {name}: container {container.get('name')} env {env['name']}"
            if "value" in env:
                problems.append(
                    f"{where} is a literal value; it must come from the secret manager "
                    "(valueFrom.secretKeyRef to the ExternalSecret's Secret "
                    f"{contracts.EXTERNAL_SECRET})"
                )
            elif _get(env, "valueFrom", "configMapKeyRef") is not None:
                problems.append(
                    f"{where} is read from a ConfigMap; use the ExternalSecret's Secret"
                )
            elif (ref := _get(env, "valueFrom", "secretKeyRef")) is not None:
                secret = _get(ref, "name")
                if secret != contracts.EXTERNAL_SECRET:
                    problems.append(
                        f"{where} is read from Secret {secret or '(unnamed)'}; it must come from "
                        f"the ExternalSecret's Secret {contracts.EXTERNAL_SECRET} (the secret "
                        "manager), not from a Secret made by hand"
                    )
    return problems


def validate_flow_credentials(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Flow credentials and the admin token reach pods only from the secret manager."""
    name = k8s_name(args.props, args.name)
    if args.resource_type in WORKLOADS:
        spec = pod_spec(args.resource_type, args.props)
        for problem in _env_problems(WORKLOADS[args.resource_type], name, spec):
            report(problem, None)
    elif args.resource_type in {CONFIG_MAP, SECRET}:
        kind = "ConfigMap" if args.resource_type == CONFIG_MAP else "Secret"
        for section in ("data", "binaryData", "stringData"):
            keys = sorted(set(args.props.get(section) or {}) & set(contracts.SECRET_KEYS))
            for key in keys:
                report(
                    f"{kind} {name}: {section} holds {key} literally; Flow credentials and the "
                    "admin token come only from the secret manager through the ExternalSecret",
                    None,
                )


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in {"", "latest"}


def validate_container_baseline(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Containers run as non-root, with CPU and memory limits and a pinned image tag."""
    if args.resource_type not in WORKLOADS:
        return
    kind = WORKLOADS[args.resource_type]
    name = k8s_name(args.props, args.name)
    spec = pod_spec(args.resource_type, args.props)
    pod_non_root = _get(spec, "securityContext", "runAsNonRoot") is True
    for container in containers(spec):
        where = f"{kind} {name}: container {container.get('name')}"
        non_root = _get(container, "securityContext", "runAsNonRoot")
        if not (non_root is True or (pod_non_root and non_root is not False)):
            report(f"{where} does not set runAsNonRoot: true (pod or container)", None)
        limits = _get(container, "resources", "limits") or {}
        missing = [r for r in ("cpu", "memory") if r not in limits]
        if missing:
            report(f"{where} has no {' or '.join(missing)} limit", None)
        image = str(container.get("image") or "")
        if not _pinned(image):
            report(f"{where} image {image or '(none)'} is not pinned to a version tag", None)


# --- stack policies ------------------------------------------------------------------------------
def _probes(resources: Iterable[Any]) -> list[Any]:
    return [
        r
        for r in resources
        if r.resource_type == PROBE
        and _get(r.props, "spec", "jobName") == contracts.HEALTH_PROBE_JOB
    ]


def validate_health_probe(args: StackValidationArgs, report: ReportViolation) -> None:
    """A blackbox Probe (jobName flowchat-health) polls /api/health/ping every <= 30 s."""
    cfg = settings("health-probe", args)
    probes = _probes(args.resources)
    if not probes:
        report(
            f"no Prometheus Operator Probe with jobName {contracts.HEALTH_PROBE_JOB} in the stack: "
            f"nothing polls {contracts.PING_PATH}",
            None,
        )
        return
    for probe in probes:
        name = k8s_name(probe.props, probe.name)
        interval = _get(probe.props, "spec", "interval")
        try:
            value = seconds(interval) if interval else math.inf
        except ValueError:
            value = math.inf
        if value > float(cfg["maxIntervalSeconds"]):
            report(
                f"health Probe {name}: interval {interval or 'unset'} exceeds the runbook's bound "
                f"{_num(cfg['maxIntervalSeconds'])}s",
                probe.urn,
            )
        targets = _get(probe.props, "spec", "targets", "staticConfig", "static") or []
        if not any(str(t).rstrip("/").endswith(contracts.PING_PATH) for t in targets):
            report(
                f"health Probe {name}: targets {', '.join(map(str, targets)) or 'none'} do not "
                f"include {contracts.PING_PATH}",
                probe.urn,
            )


_RANGE = re.compile(r"\[([0-9a-z]+)\]")


def validate_health_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on probe_success{job="flowchat-health"} fires after <= 2 consecutive failures."""
    cfg = settings("health-alert", args)
    interval = float(cfg["probeIntervalSeconds"])
    for probe in _probes(args.resources):
        with contextlib.suppress(ValueError):
            interval = seconds(_get(probe.props, "spec", "interval") or interval)
    alerts = [
        a
        for a in stack_alerts(args.resources)
        if contracts.METRIC_PROBE_SUCCESS in a.query
        and _selects(a.query, job=contracts.HEALTH_PROBE_JOB)
    ]
    if not alerts:
        report(
            f'no alert on {contracts.METRIC_PROBE_SUCCESS}{{job="{contracts.HEALTH_PROBE_JOB}"}} '
            "in any RuleGroup: a failing health check would go unnoticed",
            None,
        )
        return
    bound = int(cfg["maxConsecutiveFailures"])
    for alert in alerts:
        # probe_success is 0 or 1: only `< t` with 0 < t <= 1 fires when probes fail
        if alert.op != "<" or alert.threshold is None or not 0 < alert.threshold <= 1:
            found = f"{alert.op} {_num(alert.threshold)}" if alert.op else "no threshold"
            report(
                f"health alert {alert.where}: compares with {found}; a "
                f"{contracts.METRIC_PROBE_SUCCESS} alert must fire below a threshold in (0, 1] "
                "(e.g. < 1), otherwise failed probes never fire it",
                alert.urn,
            )
            continue
        window = max((seconds(w) for w in _RANGE.findall(alert.query)), default=0.0)
        every = alert.group_interval_seconds
        # Every sample in the window failed; then, until an evaluation sees it for `for`, one more
        # probe fails per interval: `for` plus up to one evaluation interval of delay.
        wait = alert.for_seconds + every
        failures = max(1, math.ceil(window / interval)) + max(0, math.ceil(wait / interval) - 1)
        if failures > bound:
            report(
                f"health alert {alert.where}: fires after {failures} consecutive failed probes "
                f"(window {_num(window)}s + for {_num(alert.for_seconds)}s + evaluation every "
                f"{_num(every)}s at {_num(interval)}s per probe), exceeding the runbook's bound "
                f"{bound}",
                alert.urn,
            )


def _check_threshold(
    alert: Alert, what: str, bound: float, report: ReportViolation, unit: str = ""
) -> None:
    if alert.op is None or alert.threshold is None:
        report(f"{what} alert {alert.where}: no threshold expression found to check", alert.urn)
    elif not alert.op.startswith(">"):
        report(
            f"{what} alert {alert.where}: compares with {alert.op}; it must fire above a threshold",
            alert.urn,
        )
    elif alert.threshold > bound:
        report(
            f"{what} alert {alert.where}: threshold {_num(alert.threshold)}{unit} exceeds the "
            f"runbook's bound {_num(bound)}{unit}",
            alert.urn,
        )


def validate_queue_depth_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on the flow_tasks queue depth fires above <= 20 jobs held for <= 5m."""
    cfg = settings("queue-depth-alert", args)
    alerts = [
        a
        for a in stack_alerts(args.resources)
        if contracts.METRIC_RQ_JOBS in a.query
        and _selects(a.query, queue=contracts.QUEUE_NAME, status="queued")
    ]
    selector = f'{contracts.METRIC_RQ_JOBS}{{queue="{contracts.QUEUE_NAME}",status="queued"}}'
    if not alerts:
        report(f"no queue-depth alert on {selector} in any RuleGroup", None)
    for alert in alerts:
        _check_threshold(alert, "queue-depth", float(cfg["maxQueueDepth"]), report)
        if alert.for_seconds > seconds(cfg["maxFor"]):
            found = "unparseable" if math.isinf(alert.for_seconds) else _num(alert.for_seconds)
            report(
                f"queue-depth alert {alert.where}: for {found}s exceeds the runbook's bound "
                f"{cfg['maxFor']} ({_num(seconds(cfg['maxFor']))}s)",
                alert.urn,
            )


def validate_chat_latency_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on the P95 end-to-end chat latency fires above <= 10 s."""
    cfg = settings("chat-latency-alert", args)
    bucket = f"{contracts.METRIC_CHAT_LATENCY}_bucket"
    alerts = [
        a
        for a in stack_alerts(args.resources)
        if bucket in a.query and re.search(r"histogram_quantile\(\s*0?\.95\s*,", a.query)
    ]
    if not alerts:
        report(f"no P95 alert on {bucket} (histogram_quantile(0.95, ...)) in any RuleGroup", None)
    for alert in alerts:
        _check_threshold(alert, "P95 chat-latency", float(cfg["maxP95Seconds"]), report, "s")


def chroma_claims(resources: Iterable[Any]) -> dict[str, Any]:
    """PVC name -> Chroma StatefulSet resource (<template>-<statefulset>-<ordinal>)."""
    claims = {}
    for r in resources:
        if r.resource_type == STATEFUL_SET and _is(r.props, r.name, "chroma"):
            name = k8s_name(r.props, r.name)
            replicas = int(_get(r.props, "spec", "replicas") or 1)
            for template in _get(r.props, "spec", "volumeClaimTemplates") or []:
                for ordinal in range(replicas):
                    claims[f"{_get(template, 'metadata', 'name')}-{name}-{ordinal}"] = r
    return claims


def validate_chroma_volume_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """The Chroma PVC has a usage alert (<= 80 % full) and a fill forecast alert."""
    cfg = settings("chroma-volume-alert", args)
    claims = chroma_claims(args.resources)
    if not claims:
        report("no Chroma StatefulSet with a volumeClaimTemplate: no volume to watch", None)
        return
    alerts = [a for a in stack_alerts(args.resources) if METRIC_VOLUME_USED in a.query]
    for claim, statefulset in sorted(claims.items()):
        bound = [a for a in alerts if _selects(a.query, persistentvolumeclaim=claim)]
        usage = [a for a in bound if "predict_linear" not in a.query]
        usage = [a for a in usage if METRIC_VOLUME_CAPACITY in a.query]
        forecast = [a for a in bound if "predict_linear" in a.query]
        if not usage:
            claims_watched = (
                m
                for a in alerts
                if "predict_linear" not in a.query
                for m in re.findall(r'persistentvolumeclaim="([^"]+)"', a.query)
            )
            others = sorted(set(claims_watched))
            found = f" (volume alerts watch: {', '.join(others)})" if others else ""
            report(
                f"no usage alert on {METRIC_VOLUME_USED} / {METRIC_VOLUME_CAPACITY} bound to the "
                f"Chroma PVC {claim}{found}",
                statefulset.urn,
            )
        for alert in usage:
            _check_threshold(alert, "Chroma volume usage", float(cfg["maxUsageRatio"]), report)
        if not forecast:
            report(
                f"no fill-forecast alert (predict_linear on {METRIC_VOLUME_USED}) bound to the "
                f"Chroma PVC {claim}",
                statefulset.urn,
            )
        for alert in forecast:
            horizon = re.search(r"predict_linear\(.*\],\s*([0-9.]+)\s*\)", alert.query)
            hours = float(horizon.group(1)) / 3600 if horizon else 0.0
            if hours < float(cfg["minForecastHours"]):
                report(
                    f"Chroma volume forecast alert {alert.where}: looks {_num(hours)}h ahead, "
                    f"less than the runbook's {_num(float(cfg['minForecastHours']))}h",
                    alert.urn,
                )


def _urn_stack(urn: str) -> str:
    """The stack of a URN (``urn:pulumi:<stack>::<project>::...``)."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]


def _matches(route: Mapping[str, Any], label: str, value: str) -> bool:
    return any(
        isinstance(m, Mapping)
        and (m.get("label"), m.get("value")) == (label, value)
        and m.get("match") in {"=", "=~"}
        for m in route.get("matchers") or []
    )


def _service_route(policy: Any) -> Mapping[str, Any] | None:
    """The child route of a notification policy that matches service=flowchat (None: none)."""
    label, value = SERVICE_LABEL
    for child in policy.props.get("policies") or []:
        if isinstance(child, Mapping) and _matches(child, label, value):
            return child
    return None


def _route_contact_point(policy: Any) -> str | None:
    """The contact point that receives service=flowchat alerts under this notification policy."""
    props = policy.props
    route = _service_route(policy) or {}
    return str(route.get("contactPoint") or props.get("contactPoint") or "") or None


def validate_alert_routing(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every rule group reaches a contact point: a NotificationPolicy routes service=flowchat and
    stack=<stack> to an existing ContactPoint, and every rule carries both labels. (Grafana keeps
    one notification policy per org: each stack needs its own org.)"""
    groups = [r for r in args.resources if r.resource_type in RULE_GROUPS]
    if not groups:
        args.not_applicable("no Grafana rule groups in the stack")
    contact_points = {
        str(r.props.get("name") or r.name)
        for r in args.resources
        if r.resource_type in CONTACT_POINTS
    }
    policies = [r for r in args.resources if r.resource_type in NOTIFICATION_POLICIES]
    names = ", ".join(sorted(str(g.props.get("name") or g.name) for g in groups))
    if not contact_points:
        report(f"no ContactPoint in the stack: alerts of RuleGroup {names} reach nobody", None)
    if not policies:
        report(
            f"no NotificationPolicy in the stack: alerts of RuleGroup {names} are not routed", None
        )
    label, value = SERVICE_LABEL
    for policy in policies:
        target = _route_contact_point(policy)
        if target not in contact_points:
            report(
                f"NotificationPolicy {policy.name}: routes {label}={value} to "
                f"contact point {target or '(none)'}, which is not a ContactPoint of the stack "
                f"(found: {', '.join(sorted(contact_points)) or 'none'})",
                policy.urn,
            )
        stack = _urn_stack(policy.urn)
        route = _service_route(policy)
        if route is not None and not _matches(route, STACK_LABEL, stack):
            report(
                f"NotificationPolicy {policy.name}: the route for {label}={value} does not also "
                f"match {STACK_LABEL}={stack}; Grafana keeps one notification policy per org, so "
                "give each stack its own org and match its stack label",
                policy.urn,
            )
    for alert in stack_alerts(args.resources):
        found = alert.labels.get(label)
        if found != value:
            report(
                f"alert {alert.where}: label {label}={found or '(unset)'}; the "
                f"notification policy routes {label}={value}",
                alert.urn,
            )
        stack = _urn_stack(alert.urn)
        if alert.labels.get(STACK_LABEL) != stack:
            report(
                f"alert {alert.where}: label {STACK_LABEL}="
                f"{alert.labels.get(STACK_LABEL) or '(unset)'}; the notification policy routes "
                f"{STACK_LABEL}={stack}",
                alert.urn,
            )


# --- metrics --------------------------------------------------------------------------------------
def validate_metrics_scraped(args: StackValidationArgs, report: ReportViolation) -> None:
    """A Prometheus Operator ServiceMonitor scrapes /metrics from a port of the API Service."""
    services = [
        r
        for r in args.resources
        if r.resource_type == SERVICE and k8s_name(r.props, r.name) == contracts.API_DEPLOYMENT
    ]
    if not services:
        args.not_applicable(f"no Service {contracts.API_DEPLOYMENT} in the stack")
    service = services[0]
    service_labels = _get(service.props, "metadata", "labels") or {}
    port_names = {
        str(p.get("name")) for p in _get(service.props, "spec", "ports") or [] if p.get("name")
    }
    monitors = [r for r in args.resources if r.resource_type == SERVICE_MONITOR]
    for monitor in monitors:
        wanted = _get(monitor.props, "spec", "selector", "matchLabels") or {}
        selects = bool(wanted) and all(service_labels.get(k) == v for k, v in wanted.items())
        namespaces = _get(monitor.props, "spec", "namespaceSelector", "matchNames")
        service_ns = _get(service.props, "metadata", "namespace")
        in_namespace = namespaces is None or service_ns in namespaces
        endpoints = _get(monitor.props, "spec", "endpoints") or []
        scraped = any(
            e.get("port") in port_names and e.get("path", "/metrics") == contracts.METRICS_PATH
            for e in endpoints
            if isinstance(e, Mapping)
        )
        if selects and in_namespace and scraped:
            return
    found = ", ".join(k8s_name(m.props, m.name) for m in monitors) or "none"
    report(
        f"no ServiceMonitor selects Service {contracts.API_DEPLOYMENT} (labels "
        f"{', '.join(f'{k}={v}' for k, v in sorted(service_labels.items())) or 'none'}) and "
        f"scrapes {contracts.METRICS_PATH} on one of its ports "
        f"({', '.join(sorted(port_names)) or 'none named'}); found: {found}. Nothing scrapes "
        "the metrics the alerts read",
        service.urn,
    )


# --- the policies -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    validate: Callable[..., None]
    stack: bool = False
    level: EnforcementLevel = EnforcementLevel.MANDATORY


RULES: tuple[Rule, ...] = (
    Rule(
        "api-liveness-probe",
        "The API liveness probe polls /api/health/ping every <= 30 s and fails after <= 2 misses.",
        validate_api_liveness_probe,
    ),
    Rule(
        "health-probe",
        "A blackbox Probe (jobName flowchat-health) polls /api/health/ping every <= 30 s.",
        validate_health_probe,
        stack=True,
    ),
    Rule(
        "health-alert",
        "The health alert fires below a probe_success threshold in (0, 1] after <= 2 consecutive "
        "failed probes (window, for and the rule group's evaluation interval counted).",
        validate_health_alert,
        stack=True,
    ),
    Rule(
        "queue-depth-alert",
        "A queue-depth alert on flow_tasks fires above <= 20 queued jobs held for <= 5 minutes.",
        validate_queue_depth_alert,
        stack=True,
    ),
    Rule(
        "chat-latency-alert",
        "A P95 end-to-end chat latency alert fires above <= 10 s.",
        validate_chat_latency_alert,
        stack=True,
    ),
    Rule(
        "chroma-volume-alert",
        "The Chroma PVC has a usage alert (<= 80 % full) and a fill-forecast alert.",
        validate_chroma_volume_alert,
        stack=True,
    ),
    Rule(
        "persistent-volumes",
        "Redis and Chroma are StatefulSets keeping their data on volumeClaimTemplates.",
        validate_persistent_volumes,
    ),
    Rule(
        "alert-routing",
        "Every alert rule group is routed (service=flowchat and stack=<stack>) to an existing "
        "contact point.",
        validate_alert_routing,
        stack=True,
    ),
    Rule(
        "metrics-scraped",
        "A Prometheus Operator ServiceMonitor scrapes /metrics from the API Service.",
        validate_metrics_scraped,
        stack=True,
    ),
    Rule(
        "flow-credentials-from-secret-manager",
        "FLOW_AGENT, FLOW_TENANT, FLOW_AGENT_SECRET and ADMIN_TOKEN come only from the secret "
        "manager (secretKeyRef to the ExternalSecret's Secret; no literal env values, no ConfigMap "
        "or literal Secret keys).",
        validate_flow_credentials,
    ),
    Rule(
        "container-baseline",
        "Containers run as non-root with CPU and memory limits and pinned image tags.",
        validate_container_baseline,
        level=EnforcementLevel.ADVISORY,
    ),
)


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
