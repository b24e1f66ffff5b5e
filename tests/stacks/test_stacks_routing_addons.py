"""__main__.py wiring of stacks.monitoring: per-rule routing (no org-wide policy) and add-on
config (prober URL, datasource uid, monitor labels) reaching the rendered resources."""

from __future__ import annotations

import json

import pytest
from stacks_testlib import external_platform

from stacks.render import render_stack


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_rule_routes_to_the_stack_contact_point_and_no_org_policy(stack: str) -> None:
    resources = render_stack(stack)
    types = {r.type for r in resources}
    assert not [t for t in types if "notificationPolicy" in t or "NotificationPolicy" in t]
    points = {r.inputs["name"] for r in resources if r.type.endswith(":ContactPoint")}
    # prod: warnings to its chat contact point (flowchat:alerting.chat), the rest to PagerDuty
    chat = {"prod": "flowchat-prod-warnings"}.get(stack)
    assert points == {f"flowchat-{stack}", *([chat] if chat else [])}
    groups = [r for r in resources if r.type.endswith(":RuleGroup")]
    assert len(groups) == 2
    for group in groups:
        for rule in group.inputs["rules"]:
            settings = rule["notificationSettings"]
            warning = rule["labels"]["severity"] == "warning"
            expected = chat if chat and warning else f"flowchat-{stack}"
            assert settings["contactPoint"] == expected, rule.get("title")
            assert rule["labels"]["stack"] == stack


EXTERNAL_PLATFORM = external_platform("staging")


def test_addons_reach_probe_rules_and_monitors() -> None:
    addons = {
        "prometheusDatasourceUid": "managed-prom-42",
        "monitorLabels": {"release": "prom-stack", "team": "chat"},
    }
    platform = {**EXTERNAL_PLATFORM, "proberUrl": "prober.observability.svc:9115"}
    resources = render_stack(
        "staging",
        config_overrides={
            "addons": json.dumps(addons),
            "platform": json.dumps({"external": platform}),
        },
    )
    (probe,) = [r.inputs for r in resources if r.inputs.get("kind") == "Probe"]
    assert probe["spec"]["prober"]["url"] == "prober.observability.svc:9115"
    assert probe["metadata"]["labels"]["release"] == "prom-stack"
    (monitor,) = [r.inputs for r in resources if r.inputs.get("kind") == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["team"] == "chat"
    group = next(r for r in resources if r.type.endswith(":RuleGroup"))
    query = group.inputs["rules"][0]["datas"][0]
    assert query["datasourceUid"] == "managed-prom-42"
    dashboard = next(r for r in resources if r.type.endswith(":Dashboard"))
    assert "managed-prom-42" in dashboard.inputs["configJson"]
