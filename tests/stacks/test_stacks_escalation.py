"""stacks/escalation.py in the offline preview of the prod stack: critical alerts page PagerDuty's
escalation policy (backend on call, then DevOps), warnings go to the chat contact point."""

from __future__ import annotations

import json

import pytest

from policies.runbook.thresholds import ALERTS
from stacks.alerts import RUNBOOK_ANCHORS
from stacks.config import ConfigError, parse_config
from stacks.escalation import SEVERITY_ROUTES, Escalation, EscalationArgs, EscalationConfig
from stacks.render import render_program, render_stack
from stacktools.first_run import ProviderMocks

ESCALATION = {
    "backendScheduleId": "PBACKEND",
    "devopsScheduleId": "PDEVOPS",
    "escalationDelayMinutes": 20,
    "teamId": "PTEAM",
    "productOwnerUserId": "PPRODUCT",
}


def _render(preview: bool = False) -> list:
    chat = {"contactPoint": "flowchat-prod", "type": "slack"}  # warnings go to chat
    overrides = {"escalation": json.dumps(ESCALATION), "alerting": json.dumps(chat)}
    return render_stack("prod", config_overrides=overrides, preview=preview)


def _one(resources: list, suffix: str):
    found = [r for r in resources if r.type.endswith(suffix)]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def test_critical_and_warning_alerts_route_to_different_contact_points() -> None:
    resources = _render()
    points = {r.inputs["name"]: r.inputs for r in resources if r.type.endswith(":ContactPoint")}
    assert set(points) == {"flowchat-prod", "flowchat-prod-page"}
    rules = {
        rule["name"]: rule
        for g in resources
        if g.type.endswith(":RuleGroup")
        for rule in g.inputs["rules"]
    }
    assert set(rules) == set(RUNBOOK_ANCHORS)
    routed = {name: rule["notificationSettings"]["contactPoint"] for name, rule in rules.items()}
    severities = {ALERTS[name].severity for name in rules}
    assert severities == set(SEVERITY_ROUTES)  # both severities are in play
    for name, target in routed.items():
        severity = rules[name]["labels"]["severity"]
        expected = "flowchat-prod-page" if SEVERITY_ROUTES[severity] == "page" else "flowchat-prod"
        assert target == expected, name
    critical = next(n for n in rules if ALERTS[n].severity == "critical")
    warning = next(n for n in rules if ALERTS[n].severity == "warning")
    assert routed[critical] != routed[warning]
    # the paging contact point sends (as a secret) to the PagerDuty service's integration key
    assert points["flowchat-prod-page"]["pagerduties"][0]["integrationKey"] == "[secret]"
    details = points["flowchat-prod-page"]["pagerduties"][0]["details"]
    assert details == {
        "runbook": "{{ .CommonAnnotations.runbook_url }}",
        "record": "{{ .CommonAnnotations.incident }}",
    }
    page = next(r for r in resources if r.name == "flowchat-page-contact-point")
    integration = _one(resources, ":ServiceIntegration")
    assert integration.urn in page.dependencies


def test_the_policy_has_the_runbook_tiers_and_the_product_owner_is_a_stakeholder() -> None:
    resources = _render()
    policy = _one(resources, ":EscalationPolicy").inputs
    assert [r["targets"] for r in policy["rules"]] == [
        [{"type": "schedule_reference", "id": "PBACKEND"}],
        [{"type": "schedule_reference", "id": "PDEVOPS"}],
    ]
    assert {r["escalationDelayInMinutes"] for r in policy["rules"]} == {20}
    service = _one(resources, "index/service:Service").inputs
    assert service["escalationPolicy"] == "flowchat-escalation-policy-id"
    integration = _one(resources, ":ServiceIntegration").inputs
    assert integration["service"] == "flowchat-pagerduty-service-id"
    assert integration["type"] == "events_api_v2_inbound_integration"
    dependency = _one(resources, ":ServiceDependency").inputs["dependency"]
    assert dependency["supportingServices"] == [
        {"id": "flowchat-pagerduty-service-id", "type": "service"}
    ]
    subscriber = _one(resources, ":BusinessServiceSubscriber").inputs
    assert subscriber == {
        **subscriber,
        "subscriberId": "PPRODUCT",
        "subscriberType": "user",
        "businessServiceId": "flowchat-business-service-id",
    }
    # every PagerDuty resource uses the explicit provider, whose token is secret config
    provider = _one(resources, "providers:pagerduty")
    assert provider.inputs["token"]  # the offline placeholder, delivered as a secret
    pd = [r for r in resources if r.type.startswith("pagerduty:")]
    assert pd and all(r.provider and "flowchat-pagerduty" in r.provider for r in pd)


def test_the_preview_plans_with_unknown_ids() -> None:
    resources = _render(preview=True)
    assert _one(resources, ":EscalationPolicy")


def test_without_escalation_every_alert_goes_to_the_one_contact_point() -> None:
    resources = render_stack("staging")
    assert not [r for r in resources if r.type.startswith("pagerduty:")]
    targets = {
        rule["notificationSettings"]["contactPoint"]
        for g in resources
        if g.type.endswith(":RuleGroup")
        for rule in g.inputs["rules"]
    }
    assert targets == {"flowchat-staging"}


def test_escalation_without_its_token_fails() -> None:
    with pytest.raises(ValueError, match="pagerdutyToken"):
        render_program(
            lambda: Escalation(
                "x",
                EscalationArgs("prod", EscalationConfig.model_validate(ESCALATION), "chat"),
            ),
            stack="prod",
            config={},
        )


def test_a_pagerduty_provider_without_a_token_fails_like_the_real_one() -> None:
    import pulumi_pagerduty as pagerduty

    mocks = ProviderMocks(env={}, tools=set(), cloud="aws")
    render_program(lambda: pagerduty.Provider("pd"), stack="prod", config={}, mocks=mocks)
    assert mocks.problems == [
        "pulumi:providers:pagerduty pd: pagerduty provider without a token "
        "(flowchat:pagerdutyToken / PAGERDUTY_TOKEN)"
    ]


def test_config_refuses_an_escalation_without_tiers_and_hides_the_token() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            "prod",
            {
                "alerting": json.dumps({"type": "email", "addresses": ["a@example.com"]}),
                "escalation": json.dumps({"backendScheduleId": "P1"}),
                "pagerdutyToken": "s3cr3t-token",
            },
            frozenset({"pagerdutyToken"}),
        )
    text = str(err.value)
    assert "flowchat:escalation.devopsScheduleId" in text
    assert "flowchat:escalation.productOwnerUserId" in text
    assert "s3cr3t-token" not in text
