"""Escalation by severity: critical alerts page a PagerDuty escalation policy, warnings go to chat.

`Escalation` builds, with an explicit PagerDuty provider (token from the secret config
`flowchat:pagerdutyToken`, delivered by the stack's ESC environment) and the stack's Grafana
provider, as children:

- the escalation policy with the runbook's tiers ("Escalation"): tier 1 the backend on-call
  schedule, tier 2 the DevOps schedule after `escalationDelayMinutes` without acknowledgement
  (schedules and the team are referenced by their PagerDuty ids from `flowchat:escalation`);
- the technical service `flowchat-<stack>` on that policy, with an Events API v2 integration;
- the business service `flowchat (<stack>)` that the technical service supports, with the product
  owner subscribed as a stakeholder (PagerDuty notifies business-service subscribers of the
  status updates responders post on P0/P1 incidents: tier 3, customer communication);
- the Grafana contact point `flowchat-<stack>-page` that sends to that integration.

`routes` maps each alert severity to a contact point name: `SEVERITY_ROUTES` says which severity
pages and which goes to chat (the stack's `flowchat:alerting` contact point). `stacks.monitoring`
routes each rule by its own notification settings to the contact point of its severity: still
per-rule routing, no org-wide notification policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import pulumi
import pulumi_pagerduty as pagerduty
import pulumiverse_grafana as grafana
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from app import contracts
from policies.runbook.thresholds import PAGING_SEVERITIES, Severity

Route = Literal["page", "chat"]
# The one place that says which severity pages (critical) and which goes to chat (warning).
SEVERITY_ROUTES: Final[dict[str, Route]] = {
    severity: "page" if severity in PAGING_SEVERITIES else "chat" for severity in get_args(Severity)
}
PAGERDUTY_TOKEN_KEY: Final = "pagerdutyToken"  # secret config, from the stack's ESC environment
EVENTS_API_V2: Final = "events_api_v2_inbound_integration"


class EscalationConfig(BaseModel):
    """`flowchat:escalation`: the PagerDuty ids of the runbook's tiers (ids, never names)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    backend_schedule_id: str = Field(min_length=1)  # tier 1: backend engineer on call
    devops_schedule_id: str = Field(min_length=1)  # tier 2: DevOps engineer on call
    escalation_delay_minutes: int = Field(default=15, ge=1, le=120)  # unacknowledged -> tier 2
    num_loops: int = Field(default=2, ge=0, le=9)  # times the policy repeats before it stops
    team_id: str | None = None  # PagerDuty team owning the policy
    product_owner_user_id: str = Field(min_length=1)  # tier 3: subscribed stakeholder
    token: SecretStr | None = None  # flowchat:pagerdutyToken (secret config)


@dataclass
class EscalationArgs:
    stack: str
    config: EscalationConfig
    chat_contact_point: Any  # name (or Output) of the stack's chat contact point (alerting)


def page_contact_point_name(stack: str) -> str:
    return f"{contracts.APP_NAME}-{stack}-page"


def escalation_rules(config: EscalationConfig) -> list[dict[str, Any]]:
    """The runbook's tiers as PagerDuty escalation rules: backend on call, then DevOps."""
    return [
        {
            "escalation_delay_in_minutes": config.escalation_delay_minutes,
            "targets": [{"type": "schedule_reference", "id": schedule}],
        }
        for schedule in (config.backend_schedule_id, config.devops_schedule_id)
    ]


class Escalation(pulumi.ComponentResource):
    """PagerDuty policy, service, integration, stakeholder, and the Grafana paging contact point."""

    provider: pagerduty.Provider
    policy: pagerduty.EscalationPolicy
    service: pagerduty.Service
    integration: pagerduty.ServiceIntegration
    business_service: pagerduty.BusinessService
    stakeholder: pagerduty.BusinessServiceSubscriber
    page_contact_point: grafana.alerting.ContactPoint
    routes: dict[str, Any]  # severity -> contact point name

    def __init__(
        self, name: str, args: EscalationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Escalation", name, None, opts)
        config, stack = args.config, args.stack
        if config.token is None:
            raise ValueError(
                f"flowchat:{PAGERDUTY_TOKEN_KEY} is required with flowchat:escalation "
                "(a secret from the stack's ESC environment)"
            )
        self.provider = pagerduty.Provider(
            f"{name}-pagerduty",
            token=pulumi.Output.secret(config.token.get_secret_value()),
            opts=pulumi.ResourceOptions(parent=self),
        )
        pd = pulumi.ResourceOptions(parent=self, provider=self.provider)
        title = f"{contracts.APP_NAME}-{stack}"
        self.policy = pagerduty.EscalationPolicy(
            f"{name}-escalation-policy",
            name=title,
            description="runbook Escalation: backend on call, then DevOps",
            num_loops=config.num_loops,
            teams=config.team_id,
            rules=escalation_rules(config),
            opts=pd,
        )
        self.service = pagerduty.Service(
            f"{name}-pagerduty-service",
            name=title,
            escalation_policy=self.policy.id,
            alert_creation="create_alerts_and_incidents",
            opts=pd,
        )
        self.integration = pagerduty.ServiceIntegration(
            f"{name}-grafana-integration",
            name="Grafana",
            service=self.service.id,
            type=EVENTS_API_V2,
            opts=pd,
        )
        self.business_service = pagerduty.BusinessService(
            f"{name}-business-service",
            name=f"{contracts.APP_NAME} ({stack})",
            description="customer-facing flowchat; stakeholders get P0/P1 status updates",
            team=config.team_id,
            opts=pd,
        )
        pagerduty.ServiceDependency(
            f"{name}-business-dependency",
            dependency={
                "dependent_services": [
                    {"id": self.business_service.id, "type": "business_service"}
                ],
                "supporting_services": [{"id": self.service.id, "type": "service"}],
            },
            opts=pd,
        )
        self.stakeholder = pagerduty.BusinessServiceSubscriber(
            f"{name}-product-owner",
            business_service_id=self.business_service.id,
            subscriber_id=config.product_owner_user_id,
            subscriber_type="user",
            opts=pd,
        )
        self.page_contact_point = grafana.alerting.ContactPoint(
            f"{name}-page-contact-point",
            name=page_contact_point_name(stack),
            pagerduties=[
                {
                    "integration_key": pulumi.Output.secret(self.integration.integration_key),
                    "summary": "{{ .CommonLabels.alertname }} ({{ .CommonLabels.stack }})",
                    "severity": "critical",
                    # what the paged engineer opens and runs first (stacks.alerts annotations)
                    "details": {
                        "runbook": "{{ .CommonAnnotations.runbook_url }}",
                        "record": "{{ .CommonAnnotations.incident }}",
                    },
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        by_route: dict[Route, Any] = {
            "page": self.page_contact_point.name,
            "chat": args.chat_contact_point,
        }
        self.routes = {severity: by_route[route] for severity, route in SEVERITY_ROUTES.items()}
        self.register_outputs(
            {
                "escalationPolicy": self.policy.id,
                "pagerdutyService": self.service.id,
                "pageContactPoint": self.page_contact_point.name,
            }
        )
