"""The `severity-routes` policy: every severity has a route; critical pages, warning chats."""

from __future__ import annotations

import json

from policies_testlib import analyze, mandatory, rendered

from policies.runbook.thresholds import ALERTS, PAGING_SEVERITIES
from stacks.render import RenderedResource

ESCALATION = json.dumps(
    {"backendScheduleId": "PB", "devopsScheduleId": "PD", "productOwnerUserId": "PO"}
)
CHAT = json.dumps({"contactPoint": "flowchat-prod", "type": "slack"})  # warnings go to chat
TIERED = {"escalation": ESCALATION, "alerting": CHAT}


def fired(resources: list[RenderedResource], **config: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in mandatory(analyze(resources, config or None)):
        found.setdefault(f.policy, []).append(f.message)
    return found


def _rules(resources: list[RenderedResource]) -> dict[str, dict]:
    return {
        rule["name"]: rule
        for g in resources
        if g.type.endswith(":RuleGroup")
        for rule in g.inputs["rules"]
    }


def _one_of(severity: str) -> str:
    return next(name for name, spec in sorted(ALERTS.items()) if spec.severity == severity)


def test_prod_with_escalation_passes_every_mandatory_policy() -> None:
    resources = rendered("prod", **TIERED)
    targets = {r["notificationSettings"]["contactPoint"] for r in _rules(resources).values()}
    assert targets == {"flowchat-prod", "flowchat-prod-page"}
    assert fired(resources) == {}


def test_a_warning_that_pages_fires() -> None:
    resources = rendered("prod", **TIERED)
    warning = _one_of("warning")
    _rules(resources)[warning]["notificationSettings"]["contactPoint"] = "flowchat-prod-page"
    messages = fired(resources)["severity-routes"]
    assert any(
        m.startswith(f"alert {warning} in RuleGroup")
        and "routes to flowchat-prod-page, which pages (PagerDuty)" in m
        for m in messages
    ), messages
    assert any(m.startswith("severity warning: alerts route to flowchat-prod, ") for m in messages)


def test_a_critical_alert_sent_to_chat_fires() -> None:
    resources = rendered("prod", **TIERED)
    critical = _one_of(PAGING_SEVERITIES[0])
    _rules(resources)[critical]["notificationSettings"]["contactPoint"] = "flowchat-prod"
    messages = fired(resources)["severity-routes"]
    assert any(f"alert {critical} in RuleGroup" in m and "does not page" in m for m in messages)


def test_a_severity_without_a_route_fires() -> None:
    resources = rendered("staging")
    name = _one_of("warning")
    _rules(resources)[name]["labels"]["severity"] = "info"
    messages = fired(resources)["severity-routes"]
    assert messages == [
        f"alert {name} in RuleGroup {messages[0].split('RuleGroup ')[1].split(':')[0]}: "
        "severity info has no route (routed severities: critical, warning)"
    ]
    # a stack that routes info too (policy config) passes
    allowed = fired(
        resources, **{"severity-routes": {"severities": ["critical", "warning", "info"]}}
    )
    assert "severity-routes" not in allowed


PAGERDUTY_ONLY = json.dumps(
    {"contactPoint": "flowchat-prod", "type": "pagerduty", "addresses": ["oncall@ciandt.com"]}
)


def test_the_committed_stacks_pass_and_prod_warnings_go_to_chat() -> None:
    """Staging: one Slack contact point. Prod: PagerDuty for critical, its chat contact point
    (flowchat:alerting.chat, Pulumi.prod.yaml) for warnings: no prod warning pages."""
    assert "severity-routes" not in fired(rendered("staging"))
    resources = rendered("prod")
    assert "severity-routes" not in fired(resources)
    points = {
        r.inputs["name"]: bool(r.inputs.get("pagerduties"))
        for r in resources
        if r.type.endswith(":ContactPoint")
    }
    assert points == {"flowchat-prod": True, "flowchat-prod-warnings": False}
    for rule in _rules(resources).values():
        pages = points[rule["notificationSettings"]["contactPoint"]]
        assert pages == (rule["labels"]["severity"] in PAGING_SEVERITIES), rule["name"]


def test_a_warning_paging_the_only_contact_point_fires() -> None:
    """One PagerDuty contact point and nothing else: every warning pages, and the policy says so
    (it used to pass, checking pages only when a stack had both kinds)."""
    resources = rendered("prod", alerting=PAGERDUTY_ONLY)
    messages = fired(resources)["severity-routes"]
    warnings = sorted(name for name, spec in ALERTS.items() if spec.severity == "warning")
    assert warnings
    for name in warnings:
        assert any(
            m.startswith(f"alert {name} in RuleGroup")
            and "routes to flowchat-prod, which pages (PagerDuty)" in m
            for m in messages
        ), (name, messages)
    assert not any("does not page" in m for m in messages)  # critical paging is right
