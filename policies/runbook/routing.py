"""Alert routing: every alert reaches the stack's contact point (runbook: "Alert routing")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

from .common import (
    CONTACT_POINTS,
    NOTIFICATION_POLICIES,
    RULE_GROUPS,
    SERVICE_LABEL,
    STACK_LABEL,
    stack_alerts,
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
