"""stacks/monitoring.py under Pulumi mocks: rule groups, routing, dashboard and the health Probe."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from app import contracts
from stacks.alerts import RUNBOOK_ANCHORS, Thresholds, alert_rules
from stacks.config import TokenPrices
from stacks.monitoring import Monitoring, MonitoringArgs
from stacks.render import RenderedResource, render_program

NAMESPACE = "flowchat-test"
PVC = "data-flowchat-chroma-0"


@dataclass
class Alerting:  # stand-in for stacks.config.AlertingConfig
    contact_point: str = "flowchat-test"
    type: str = "email"
    addresses: list[str] = field(default_factory=lambda: ["oncall@example.com"])
    url: SecretStr | None = None
    integration_key: SecretStr | None = None
    chat: Any = None  # stacks.config_cluster.ChatRoute


def render(
    thresholds: Thresholds, alerting: Any | None = None, prices: TokenPrices | None = None
) -> list[RenderedResource]:
    args = MonitoringArgs(
        stack="test",
        namespace=NAMESPACE,
        thresholds=thresholds,
        alerting=alerting or Alerting(),
        chroma_pvc_name=PVC,
        api_service_url=f"http://flowchat-api.{NAMESPACE}.svc.cluster.local:8000",
        dashboard_uid="flowchat-test",
        token_prices=prices or TokenPrices(),
    )
    return render_program(lambda: Monitoring("flowchat", args), stack="test", config={})


def by_type(resources: list[RenderedResource], suffix: str) -> list[RenderedResource]:
    return [r for r in resources if r.type.endswith(suffix)]


def models(rule: dict) -> dict[str, dict]:
    return {d["refId"]: json.loads(d["model"]) for d in rule["datas"]}


TIGHT = Thresholds.model_validate(
    {"queueDepth": 12, "queueDepthFor": "3m", "latencyP95Seconds": 7, "volumeUsageRatio": 0.7}
)


def test_rule_groups_hold_every_alert_with_the_configured_thresholds() -> None:
    resources = render(TIGHT)
    groups = {r.inputs["name"]: r.inputs for r in by_type(resources, ":RuleGroup")}
    assert set(groups) == {"flowchat-monitoring", "flowchat-troubleshooting"}
    rules = {rule["name"]: rule for g in groups.values() for rule in g["rules"]}
    assert set(rules) == set(RUNBOOK_ANCHORS)
    folder = by_type(resources, ":Folder")[0].inputs["uid"]
    assert all(g["folderUid"] == folder for g in groups.values())

    queue = rules["FlowchatQueueBacklog"]
    assert queue["for"] == "3m" and queue["condition"] == "C"
    m = models(queue)
    assert m["A"]["expr"] == 'max by (queue) (rq_jobs{queue="flow_tasks",status="queued"})'
    assert m["B"] == {**m["B"], "type": "reduce", "expression": "A", "reducer": "last"}
    assert m["C"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [12]}
    assert models(rules["FlowchatChatLatencyP95High"])["C"]["conditions"][0]["evaluator"] == {
        "type": "gt",
        "params": [7],
    }
    volume = models(rules["FlowchatVectorStoreVolumeFilling"])
    assert f'persistentvolumeclaim="{PVC}"' in volume["A"]["expr"]
    assert volume["C"]["conditions"][0]["evaluator"]["params"] == [0.7]
    for name, rule in rules.items():
        assert rule["labels"]["service"] == "flowchat"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["runbook_url"].endswith(f"#{RUNBOOK_ANCHORS[name]}")
        assert {d["datasourceUid"] for d in rule["datas"]} == {"prometheus", "__expr__"}


def test_every_rule_reaches_the_stacks_contact_point() -> None:
    """Per rule (notificationSettings.contactPoint, issue 9) or, until stacks/monitoring.py
    routes per rule, through a NotificationPolicy route matching service and stack (the policy
    pack's alert-routing rule refuses that org-wide resource)."""
    resources = render(Thresholds())
    (contact,) = by_type(resources, ":ContactPoint")
    assert contact.inputs["name"] == "flowchat-test"
    assert contact.inputs["emails"] == [{"addresses": ["oncall@example.com"], "singleEmail": True}]
    policies = by_type(resources, ":NotificationPolicy")
    routes = [route for policy in policies for route in policy.inputs.get("policies") or []]
    rules = [rule for group in by_type(resources, ":RuleGroup") for rule in group.inputs["rules"]]
    assert len(rules) == len(RUNBOOK_ANCHORS)
    for rule in rules:
        assert rule["labels"]["service"] == "flowchat" and rule["labels"]["stack"] == "test"
        own = (rule.get("notificationSettings") or {}).get("contactPoint")
        routed = [
            r["contactPoint"]
            for r in routes
            if all(rule["labels"].get(m["label"]) == m["value"] for m in r["matchers"])
        ]
        assert (own or (routed and routed[0])) == "flowchat-test", rule["name"]


def test_dashboard_panels_reuse_the_alert_queries() -> None:
    (dashboard,) = by_type(render(TIGHT), ":Dashboard")
    panels = {p["title"]: p for p in json.loads(dashboard.inputs["configJson"])["panels"]}
    rules = {r.name: r for r in alert_rules(TIGHT, namespace=NAMESPACE, chroma_pvc=PVC)}
    for title, alert in (
        ("Chroma volume usage", "FlowchatVectorStoreVolumeFilling"),
        ("P95 chat latency", "FlowchatChatLatencyP95High"),
        ("Flow failure ratio (5xx, timeouts, errors)", "FlowchatFlowErrors"),
        ("Empty answers ratio", "FlowchatEmptyAnswers"),
    ):
        (target,) = panels[title]["targets"]
        assert target["expr"] == rules[alert].query, title
    volume = panels["Chroma volume usage"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert volume[-1]["value"] == 0.7


@pytest.mark.parametrize(
    ("kind", "extra", "key", "secret_field"),
    [
        ("slack", {"url": SecretStr("https://hooks.slack.test/x")}, "slacks", "url"),
        ("pagerduty", {"integration_key": SecretStr("pd-key")}, "pagerduties", "integrationKey"),
    ],
)
def test_contact_point_types_keep_their_secrets_secret(
    kind: str, extra: dict, key: str, secret_field: str
) -> None:
    alerting = Alerting(type=kind, addresses=[], **extra)
    (contact,) = by_type(render(Thresholds(), alerting), ":ContactPoint")
    assert contact.inputs[key][0][secret_field] == "[secret]"
    assert "emails" not in contact.inputs


def test_with_a_chat_route_warnings_go_to_slack_and_critical_pages() -> None:
    """flowchat:alerting.chat (prod): a second, Slack, contact point takes the severities that
    do not page; the PagerDuty one keeps the paging ones."""
    from stacks.config_cluster import ChatRoute

    chat = ChatRoute(
        contact_point="flowchat-test-warnings", url=SecretStr("https://hooks.slack.test/w")
    )
    alerting = Alerting(
        type="pagerduty", addresses=[], integration_key=SecretStr("pd-key"), chat=chat
    )
    resources = render(Thresholds(), alerting)
    points = {c.inputs["name"]: c.inputs for c in by_type(resources, ":ContactPoint")}
    assert set(points) == {"flowchat-test", "flowchat-test-warnings"}
    assert points["flowchat-test-warnings"]["slacks"][0]["url"] == "[secret]"
    assert "pagerduties" not in points["flowchat-test-warnings"]
    rules = [rule for group in by_type(resources, ":RuleGroup") for rule in group.inputs["rules"]]
    severities = {rule["labels"]["severity"] for rule in rules}
    assert severities == {"critical", "warning"}
    for rule in rules:
        target = rule["notificationSettings"]["contactPoint"]
        expected = (
            "flowchat-test"
            if rule["labels"]["severity"] == "critical"
            else ("flowchat-test-warnings")
        )
        assert target == expected, rule["name"]


def test_dashboard_queries_use_only_contract_metric_names() -> None:
    (dashboard,) = by_type(render(Thresholds()), ":Dashboard")
    model = json.loads(dashboard.inputs["configJson"])
    assert model["uid"] == "flowchat-test"
    metrics = {v for k, v in vars(contracts).items() if k.startswith("METRIC_")}
    histograms = {contracts.METRIC_CHAT_LATENCY, contracts.METRIC_FLOW_REQUEST_SECONDS}
    allowed = metrics | {f"{h}_bucket" for h in histograms}
    allowed |= {"kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes"}
    words = {"sum", "by", "rate", "histogram_quantile", "le", "status", "max", "queue"}
    words |= {"or", "vector", "namespace", "persistentvolumeclaim"}
    words |= {"without", "instance", "pod", "increase", "topk", "kind", "key"}
    words |= {"score"}  # the answer evaluation scores' label
    seen = set()
    for panel in model["panels"]:
        for target in panel["targets"]:
            text = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^]]*\]', "", target["expr"])
            names = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", text)) - words
            assert names <= allowed, (panel["title"], names - allowed)
            seen |= names
    for needed in ("rq_jobs", "rq_workers", "flowchat_chat_latency_seconds_bucket"):
        assert needed in seen
    for needed in ("flowchat_flow_requests_total", "flowchat_empty_answers_total"):
        assert needed in seen
    assert {"flowchat_vector_store_bytes", "kubelet_volume_stats_used_bytes"} <= seen
    assert contracts.METRIC_FLOW_TOKENS in seen


def test_token_panels_use_the_budget_and_the_stack_prices() -> None:
    budget = Thresholds(flowTokensDailyBudget=1_000_000)
    prices = TokenPrices(prompt=0.0025, completion=0.01)
    (dashboard,) = by_type(render(budget, prices=prices), ":Dashboard")
    panels = {p["title"]: p for p in json.loads(dashboard.inputs["configJson"])["panels"]}
    rules = {r.name: r for r in alert_rules(budget, namespace=NAMESPACE, chroma_pvc=PVC)}
    spend = panels["Flow tokens over 24 h vs budget"]
    assert spend["targets"][0]["expr"] == rules["FlowchatFlowTokenBudget"].query
    assert spend["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 1_000_000
    (cost,) = panels["Estimated Flow cost over 24 h (flowchat:tokenPrices)"]["targets"]
    assert 'kind="prompt"}[24h])))) or vector(0)) * 0.0025' in cost["expr"]
    assert 'kind="completion"}[24h])))) or vector(0)) * 0.01)' in cost["expr"]
    assert cost["expr"].endswith("/ 1000")  # prices are per 1000 tokens
    (top,) = panels["Flow tokens over 24 h, top 10 keys"]["targets"]
    assert top["expr"].startswith("topk(10, sum by (key)") and top["legendFormat"] == "{{key}}"
    (hourly,) = panels["Flow tokens per hour by kind"]["targets"]
    assert "sum by (kind)" in hourly["expr"] and "[1h]" in hourly["expr"]


def test_health_probe_polls_ping_at_the_configured_interval() -> None:
    (probe,) = by_type(render(Thresholds(healthProbeIntervalSeconds=15)), ":Probe")
    assert probe.type == "kubernetes:monitoring.coreos.com/v1:Probe"
    assert probe.inputs["metadata"]["name"] == "flowchat-health"
    assert probe.inputs["metadata"]["namespace"] == NAMESPACE
    spec = probe.inputs["spec"]
    assert spec["jobName"] == "flowchat-health" and spec["interval"] == "15s"
    assert spec["module"] == "http_2xx"
    assert spec["prober"]["url"] == "blackbox-exporter.monitoring.svc:9115"
    assert spec["targets"]["staticConfig"]["static"] == [
        f"http://flowchat-api.{NAMESPACE}.svc.cluster.local:8000/api/health/ping"
    ]
    assert probe.parent_urn and probe.parent_urn.endswith("flowchat:stacks:Monitoring::flowchat")
