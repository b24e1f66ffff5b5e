"""Alert routing: every alert reaches the stack's contact point through its OWN notification
settings (Grafana's simplified routing, `notificationSettings.contactPoint` on each rule), and the
stack creates no org-wide NotificationPolicy: that resource replaces the whole org's routing tree
(taking over other teams' routing), and two stacks in one org would overwrite each other on every
deploy (runbook: "Monitoring", "Where it is collected and routed").
"""

from __future__ import annotations

from pulumi_policy import ReportViolation, StackValidationArgs

from .common import (
    CONTACT_POINTS,
    NOTIFICATION_POLICIES,
    RULE_GROUPS,
    SERVICE_LABEL,
    STACK_LABEL,
    settings,
    stack_alerts,
)


def _urn_stack(urn: str) -> str:
    """The stack of a URN (``urn:pulumi:<stack>::<project>::...``)."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]


def validate_alert_routing(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every alert rule routes itself to a ContactPoint of the stack; no NotificationPolicy; every
    rule carries service=flowchat and stack=<stack> (silences and dashboards select on them)."""
    groups = [r for r in args.resources if r.resource_type in RULE_GROUPS]
    if not groups:
        args.not_applicable("no Grafana rule groups in the stack")
    contact_points = {
        str(r.props.get("name") or r.name)
        for r in args.resources
        if r.resource_type in CONTACT_POINTS
    }
    names = ", ".join(sorted(str(g.props.get("name") or g.name) for g in groups))
    if not contact_points:
        report(f"no ContactPoint in the stack: alerts of RuleGroup {names} reach nobody", None)
    for policy in (r for r in args.resources if r.resource_type in NOTIFICATION_POLICIES):
        report(
            f"NotificationPolicy {policy.name}: an org-wide notification policy replaces the "
            "whole Grafana org's routing tree (other teams' routes, and the other stack's on "
            "every deploy); route each rule to the stack's contact point with "
            "notificationSettings.contactPoint instead",
            policy.urn,
        )
    known = ", ".join(sorted(contact_points)) or "none"
    label, value = SERVICE_LABEL
    for alert in stack_alerts(args.resources):
        target = alert.contact_point
        if target is None:
            report(
                f"alert {alert.where}: no notificationSettings.contactPoint; each rule must "
                f"route itself to the stack's contact point ({known})",
                alert.urn,
            )
        elif target not in contact_points:
            report(
                f"alert {alert.where}: routes to contact point {target}, which is not a "
                f"ContactPoint of the stack (found: {known})",
                alert.urn,
            )
        found = alert.labels.get(label)
        if found != value:
            report(
                f"alert {alert.where}: label {label}={found or '(unset)'}, not {value}", alert.urn
            )
        stack = _urn_stack(alert.urn)
        if alert.labels.get(STACK_LABEL) != stack:
            report(
                f"alert {alert.where}: label {STACK_LABEL}="
                f"{alert.labels.get(STACK_LABEL) or '(unset)'}, not {stack}",
                alert.urn,
            )


def _pages(props: dict) -> bool:
    """A contact point that sends to PagerDuty (its `pagerduties` integrations)."""
    return bool(props.get("pagerduties"))


def validate_severity_routes(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every alert's severity has a route (runbook "Escalation"): the severity is one the pack
    knows, all alerts of one severity go to one contact point, a non-paging severity (warning)
    never routes to a paging (PagerDuty) contact point, even when that is the stack's only one
    (the stack needs a chat contact point for it), and when the stack has both a paging and a
    chat contact point, the paging severities (critical) page."""
    alerts = stack_alerts(args.resources)
    if not alerts:
        args.not_applicable("no Grafana alert rules in the stack")
    config = settings("severity-routes", args)
    known, paging = list(config["severities"]), set(config["pagingSeverities"])
    points = {
        str(r.props.get("name") or r.name): _pages(dict(r.props))
        for r in args.resources
        if r.resource_type in CONTACT_POINTS
    }
    tiered = any(points.values()) and not all(points.values())
    by_severity: dict[str, set[str]] = {}
    for alert in alerts:
        severity = alert.labels.get("severity")
        if severity not in known:
            report(
                f"alert {alert.where}: severity {severity or '(unset)'} has no route "
                f"(routed severities: {', '.join(known)})",
                alert.urn,
            )
            continue
        if alert.contact_point not in points:
            continue  # no route or not the stack's: alert-routing reports it
        by_severity.setdefault(severity, set()).add(alert.contact_point)
        should_page = severity in paging
        pages = points[alert.contact_point]
        # a warning must never page; a critical must page when the stack can page
        if (pages and not should_page) or (tiered and should_page and not pages):
            report(
                f"alert {alert.where}: severity {severity} routes to "
                f"{alert.contact_point}, which "
                + ("does not page" if should_page else "pages (PagerDuty)")
                + "; "
                + (
                    f"{', '.join(sorted(paging))} alerts page the escalation policy"
                    if should_page
                    else "it goes to a chat contact point (flowchat:alerting.chat)"
                ),
                alert.urn,
            )
    for severity, targets in sorted(by_severity.items()):
        if len(targets) > 1:
            report(
                f"severity {severity}: alerts route to {', '.join(sorted(targets))}; one route "
                "per severity",
                None,
            )
