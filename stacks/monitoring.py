"""Grafana alerting, the service dashboard and the blackbox health probe of one stack.

`Monitoring` builds, as children: a Grafana folder; a contact point (email | slack | pagerduty,
from `flowchat:alerting`); one Grafana-managed rule group per alert group of `stacks.alerts`
(PromQL query -> reduce(last) -> threshold, `for`, labels incl. ``stack``, runbook annotations),
each rule routed by its own notification settings to the contact point of its severity (the
stack's contact point; warnings to `flowchat:alerting.chat` when set, a second, Slack, contact
point for the severities `stacks.escalation.SEVERITY_ROUTES` sends to chat); the service
dashboard (panel queries from the same module, reusing the alerts' queries); and the Prometheus
Operator `Probe` that polls ``/api/health/ping`` through the blackbox exporter every
`healthProbeIntervalSeconds`.

Routing is per rule (Grafana's simplified routing: `notification_settings.contact_point` on
each rule), never an org-wide `NotificationPolicy`: that resource replaces the org's whole
policy tree, taking over other teams' routing, and two stacks in one org would overwrite each
other on every deploy. Per-rule routing touches nothing outside this stack's rules, so staging
and prod can share an org.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_grafana as grafana

from app import contracts
from stacks.alerts import (
    AlertRule,
    Thresholds,
    alert_rules,
    daily_tokens_query,
    format_duration,
    group_name,
)
from stacks.config import TokenPrices
from stacks.escalation import SEVERITY_ROUTES

PROBER_URL = "blackbox-exporter.monitoring.svc:9115"  # default of flowchat:addons.proberUrl
PROBE_MODULE = "http_2xx"
EXPR_DATASOURCE = "__expr__"  # Grafana's server-side expressions (reduce, threshold)
GROUP_INTERVAL_SECONDS = {"monitoring": 15, "troubleshooting": 60}
_EVALUATOR = {">": "gt", "<": "lt"}
STACK_LABEL = "stack"  # every rule carries stack=<stack>
# per-rule notification grouping; Grafana requires alertname and grafana_folder in it
GROUP_BY = ["alertname", "grafana_folder", "severity"]


@dataclass
class MonitoringArgs:
    stack: str
    namespace: str
    thresholds: Thresholds
    alerting: Any  # stacks.config.AlertingConfig (contact_point, type, addresses, url, ...)
    chroma_pvc_name: str
    api_service_url: str
    dashboard_uid: str
    prometheus_datasource_uid: str = "prometheus"
    prober_url: Any = PROBER_URL  # host:port, or the platform stack's Output of it
    # labels the cluster's Prometheus selects Probes by (flowchat:addons.monitorLabels)
    monitor_labels: dict[str, str] | None = None
    token_prices: TokenPrices = field(default_factory=TokenPrices)  # flowchat:tokenPrices
    # severity -> contact point name (stacks.escalation.Escalation.routes); None or a severity
    # missing: the chat contact point (alerting.chat) for chat severities, else the stack's
    routes: dict[str, Any] | None = None


def _secret_text(value: Any) -> Any:
    """A SecretStr (stacks.config) or plain value/Output -> a secret Output; None stays None."""
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return pulumi.Output.secret(value)


def folder_title(stack: str) -> str:
    """The Grafana folder of a stack (docs/runbook.md names it; a test keeps them equal)."""
    return f"{contracts.APP_NAME} ({stack})"


def dashboard_title(stack: str) -> str:
    """The stack's dashboard in that folder."""
    return f"{contracts.APP_NAME} ({stack})"


def contact_point_name(alerting: Any, stack: str) -> str:
    name = getattr(alerting, "contact_point", None) or getattr(alerting, "contact_point_name", "")
    return name or f"{contracts.APP_NAME}-{stack}"


def rule_data(rule: AlertRule, datasource_uid: str) -> list[dict[str, Any]]:
    """Grafana's data model (`datas`) of one alert: A = PromQL, B = last(A), C = B op threshold."""
    query = {
        "refId": "A",
        "datasource": {"type": "prometheus", "uid": datasource_uid},
        "editorMode": "code",
        "expr": rule.query,
        "instant": True,
        "range": False,
        "intervalMs": 1000,
        "maxDataPoints": 43200,
    }
    expression = {"type": EXPR_DATASOURCE, "uid": EXPR_DATASOURCE}
    reduce = {
        "refId": "B",
        "datasource": expression,
        "type": "reduce",
        "expression": "A",
        "reducer": "last",
    }
    threshold = {
        "refId": "C",
        "datasource": expression,
        "type": "threshold",
        "expression": "B",
        "conditions": [{"evaluator": {"type": _EVALUATOR[rule.op], "params": [rule.threshold]}}],
    }
    return [
        {
            "ref_id": "A",
            "datasource_uid": datasource_uid,
            "relative_time_range": {"from_": 600, "to": 0},
            "model": json.dumps(query),
        },
        *(
            {
                "ref_id": model["refId"],
                "datasource_uid": EXPR_DATASOURCE,
                "relative_time_range": {"from_": 0, "to": 0},
                "model": json.dumps(model),
            }
            for model in (reduce, threshold)
        ),
    ]


def grafana_rule(
    rule: AlertRule, *, stack: str, datasource_uid: str, contact_point: Any = None
) -> dict[str, Any]:
    """One `alerting.RuleGroup` rule (snake_case arg names) for `rule`, routed per rule to
    `contact_point` (a name or Output; None: no routing, for tests of the rule text)."""
    routed: dict[str, Any] = {}
    if contact_point is not None:
        routed["notification_settings"] = {"contact_point": contact_point, "group_bies": GROUP_BY}
    return {
        **routed,
        "name": rule.name,
        "condition": "C",
        "for_": rule.for_,
        "no_data_state": "OK" if rule.no_data_ok else "NoData",
        "exec_err_state": "Error",
        "labels": {**rule.all_labels, STACK_LABEL: stack},
        "annotations": rule.annotations,
        "datas": rule_data(rule, datasource_uid),
    }


def dashboard_model(args: MonitoringArgs) -> dict[str, Any]:
    """The service dashboard (Grafana JSON model); every query uses app.contracts metric names."""
    rules = {
        r.name: r
        for r in alert_rules(
            args.thresholds, namespace=args.namespace, chroma_pvc=args.chroma_pvc_name
        )
    }
    queue = contracts.QUEUE_NAME
    flow = contracts.METRIC_FLOW_REQUESTS
    prices = args.token_prices
    # USD over 24 h: prompt and completion tokens at the stack's prices per 1000 tokens
    cost = (
        f"((({daily_tokens_query(kind='prompt')}) or vector(0)) * {prices.prompt} + "
        f"(({daily_tokens_query(kind='completion')}) or vector(0)) * {prices.completion}) / 1000"
    )
    panels: list[tuple[str, str, str, str, float | None]] = [
        # title, expr, legend, unit, alert threshold drawn on the panel
        (
            "Health probe (/api/health/ping)",
            f'{contracts.METRIC_PROBE_SUCCESS}{{job="{contracts.HEALTH_PROBE_JOB}"}}',
            "{{instance}}",
            "bool_yes_no",
            None,
        ),
        (
            f"Queue depth ({queue})",
            f'{contracts.METRIC_RQ_JOBS}{{queue="{queue}",status="queued"}}',
            "queued",
            "short",
            args.thresholds.queue_depth,
        ),
        (
            "Workers",
            f'{contracts.METRIC_RQ_WORKERS}{{queue="{queue}"}}',
            "{{instance}}",
            "short",
            None,
        ),
        (
            "P95 chat latency",
            rules["FlowchatChatLatencyP95High"].query,
            "p95",
            "s",
            args.thresholds.latency_p95_seconds,
        ),
        (
            "Flow requests by status",
            f"sum by (status) (rate({flow}[5m]))",
            "{{status}}",
            "reqps",
            None,
        ),
        (
            "Flow failure ratio (5xx, timeouts, errors)",
            rules["FlowchatFlowErrors"].query,
            "failed",
            "percentunit",
            args.thresholds.flow_error_ratio,
        ),
        (
            "P95 Flow request time",
            "histogram_quantile(0.95, sum by (le) "
            f"(rate({contracts.METRIC_FLOW_REQUEST_SECONDS}_bucket[5m])))",
            "p95",
            "s",
            None,
        ),
        (
            "Empty answers ratio",
            rules["FlowchatEmptyAnswers"].query,
            "empty",
            "percentunit",
            args.thresholds.empty_answer_ratio,
        ),
        (
            "Vector store size",
            contracts.METRIC_VECTOR_STORE_BYTES,
            "{{instance}}",
            "bytes",
            None,
        ),
        (
            "Chroma volume usage",
            rules["FlowchatVectorStoreVolumeFilling"].query,
            "{{persistentvolumeclaim}}",
            "percentunit",
            args.thresholds.volume_usage_ratio,
        ),
        (
            "Flow tokens per hour by kind",
            daily_tokens_query("1h", by="kind"),
            "{{kind}}",
            "short",
            None,
        ),
        (
            "Flow tokens over 24 h, top 10 keys",
            f"topk(10, {daily_tokens_query(by='key')})",
            "{{key}}",
            "short",
            None,
        ),
        (
            "Estimated Flow cost over 24 h (flowchat:tokenPrices)",
            cost,
            "USD",
            "currencyUSD",
            None,
        ),
        (
            "Answer evaluation scores (nightly ops.evaluate)",
            f"max by (score) ({contracts.METRIC_EVAL_SCORE}"
            f'{{job="{contracts.EVAL_PUSH_JOB}",namespace="{args.namespace}"}})',
            "{{score}}",
            "percentunit",
            None,
        ),
        (
            "Flow tokens over 24 h vs budget",
            rules["FlowchatFlowTokenBudget"].query,
            "tokens",
            "short",
            args.thresholds.flow_tokens_daily_budget,
        ),
    ]
    datasource = {"type": "prometheus", "uid": args.prometheus_datasource_uid}
    built = []
    for index, (title, expr, legend, unit, threshold) in enumerate(panels):
        defaults: dict[str, Any] = {"unit": unit}
        if threshold is not None:
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [
                    {"color": "green", "value": None},
                    {"color": "red", "value": threshold},
                ],
            }
            defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
        built.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "targets": [
                    {"refId": "A", "datasource": datasource, "expr": expr, "legendFormat": legend}
                ],
            }
        )
    return {
        "uid": args.dashboard_uid,
        "title": dashboard_title(args.stack),
        "tags": [contracts.APP_NAME, args.stack],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": built,
    }


def probe_spec(args: MonitoringArgs) -> dict[str, Any]:
    """Prometheus Operator `Probe` spec: blackbox http_2xx on the API's ping endpoint."""
    return {
        "jobName": contracts.HEALTH_PROBE_JOB,
        "interval": f"{args.thresholds.health_probe_interval_seconds}s",
        "module": PROBE_MODULE,
        "prober": {"url": args.prober_url, "scheme": "http", "path": "/probe"},
        "targets": {
            "staticConfig": {
                "static": [f"{args.api_service_url.rstrip('/')}{contracts.PING_PATH}"],
            }
        },
    }


class Monitoring(pulumi.ComponentResource):
    """Folder, contact point, per-rule-routed rule groups, dashboard and health Probe."""

    folder: grafana.oss.Folder
    contact_point: grafana.alerting.ContactPoint
    chat_contact_point: grafana.alerting.ContactPoint | None  # alerting.chat (warnings)
    rule_groups: dict[str, grafana.alerting.RuleGroup]
    dashboard: grafana.oss.Dashboard
    probe: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = args.stack

        self.folder = grafana.oss.Folder(
            f"{name}-folder",
            title=folder_title(stack),
            uid=f"{contracts.APP_NAME}-{stack}",
            opts=child,
        )
        self.contact_point = self._contact_point(name, args, child)
        self.chat_contact_point = self._chat_contact_point(name, args, child)
        points = [p for p in (self.contact_point, self.chat_contact_point) if p is not None]
        rules = alert_rules(
            args.thresholds, namespace=args.namespace, chroma_pvc=args.chroma_pvc_name
        )
        self.rule_groups = {}
        for group in ("monitoring", "troubleshooting"):
            members = [r for r in rules if r.group == group]
            self.rule_groups[group] = grafana.alerting.RuleGroup(
                f"{name}-rules-{group}",
                name=group_name(group),
                folder_uid=self.folder.uid,
                interval_seconds=GROUP_INTERVAL_SECONDS[group],
                rules=[
                    grafana_rule(
                        r,
                        stack=stack,
                        datasource_uid=args.prometheus_datasource_uid,
                        contact_point=(args.routes or {}).get(r.severity, self._route(r.severity)),
                    )
                    for r in members
                ],
                opts=pulumi.ResourceOptions(parent=self, depends_on=points),
            )

        self.dashboard = grafana.oss.Dashboard(
            f"{name}-dashboard",
            folder=self.folder.uid,
            config_json=json.dumps(dashboard_model(args)),
            overwrite=True,
            opts=child,
        )

        self.probe = k8s.apiextensions.CustomResource(
            f"{name}-health-probe",
            api_version="monitoring.coreos.com/v1",
            kind="Probe",
            metadata={
                "name": contracts.HEALTH_PROBE_JOB,
                "namespace": args.namespace,
                "labels": {
                    "app.kubernetes.io/name": contracts.APP_NAME,
                    "app.kubernetes.io/component": "monitoring",
                    "app.kubernetes.io/instance": stack,
                    "app.kubernetes.io/part-of": contracts.APP_NAME,
                    **(args.monitor_labels or {}),
                },
            },
            spec=probe_spec(args),
            opts=child,
        )

        self.register_outputs(
            {
                "folderUid": self.folder.uid,
                "contactPoint": self.contact_point.name,
                "ruleGroups": [group_name("monitoring"), group_name("troubleshooting")],
                "dashboardUid": args.dashboard_uid,
                "probeInterval": format_duration(args.thresholds.health_probe_interval_seconds),
            }
        )

    def _route(self, severity: str) -> Any:
        """The contact point of a severity when no escalation routes it."""
        if self.chat_contact_point is not None and SEVERITY_ROUTES.get(severity) == "chat":
            return self.chat_contact_point.name
        return self.contact_point.name

    def _chat_contact_point(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions
    ) -> grafana.alerting.ContactPoint | None:
        chat = getattr(args.alerting, "chat", None)
        if chat is None:
            return None
        url = _secret_text(chat.url)
        if url is None:
            raise ValueError("alerting.chat needs url (the webhook, secret config)")
        return grafana.alerting.ContactPoint(
            f"{name}-chat-contact-point",
            name=chat.contact_point,
            slacks=[{"url": url, "title": "{{ .CommonLabels.alertname }}"}],
            opts=opts,
        )

    def _contact_point(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions
    ) -> grafana.alerting.ContactPoint:
        alerting = args.alerting
        kind = alerting.type
        receivers: dict[str, Any] = {}
        addresses = list(getattr(alerting, "addresses", None) or [])
        if kind == "email" or addresses:
            receivers["emails"] = [{"addresses": addresses, "single_email": True}]
        if kind == "email" and not addresses:
            raise ValueError("alerting type email needs at least one address")
        if kind == "slack":
            url = _secret_text(getattr(alerting, "url", None))
            if url is None:
                raise ValueError("alerting type slack needs url (the webhook, secret config)")
            receivers["slacks"] = [{"url": url, "title": "{{ .CommonLabels.alertname }}"}]
        elif kind == "pagerduty":
            key = _secret_text(getattr(alerting, "integration_key", None))
            if key is None:
                raise ValueError("alerting type pagerduty needs integration_key (secret config)")
            receivers["pagerduties"] = [{"integration_key": key}]
        elif kind != "email":
            raise ValueError(f"unknown alerting type {kind!r}: expected email, slack or pagerduty")
        return grafana.alerting.ContactPoint(
            f"{name}-contact-point",
            name=contact_point_name(alerting, args.stack),
            opts=opts,
            **receivers,
        )
