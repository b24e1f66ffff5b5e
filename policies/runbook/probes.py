"""Health: the API's liveness probe, the blackbox health Probe and its alert, and the
ServiceMonitor that scrapes the metrics every alert reads (runbook: "Monitoring").
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

from . import thresholds
from .common import (
    PROBE,
    SERVICE,
    SERVICE_MONITOR,
    WORKLOADS,
    _get,
    _is,
    _num,
    _selects,
    k8s_name,
    pod_spec,
    seconds,
    settings,
    stack_alerts,
)


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
    pinging = [(c, p) for c, p in probes if _get(p, "httpGet", "path") == thresholds.PING_PATH]
    if not pinging:
        paths = [str(_get(p, "httpGet", "path")) for _, p in probes if p]
        report(
            f"API {kind} {name}: no liveness probe on {thresholds.PING_PATH} "
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


def _probes(resources: Iterable[Any]) -> list[Any]:
    return [
        r
        for r in resources
        if r.resource_type == PROBE
        and _get(r.props, "spec", "jobName") == thresholds.HEALTH_PROBE_JOB
    ]


def validate_health_probe(args: StackValidationArgs, report: ReportViolation) -> None:
    """A blackbox Probe (jobName flowchat-health) polls /api/health/ping every <= 30 s."""
    cfg = settings("health-probe", args)
    probes = _probes(args.resources)
    if not probes:
        report(
            f"no Prometheus Operator Probe with jobName {thresholds.HEALTH_PROBE_JOB} in the "
            f"stack: nothing polls {thresholds.PING_PATH}",
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
        if not any(str(t).rstrip("/").endswith(thresholds.PING_PATH) for t in targets):
            report(
                f"health Probe {name}: targets {', '.join(map(str, targets)) or 'none'} do not "
                f"include {thresholds.PING_PATH}",
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
        if thresholds.METRIC_PROBE_SUCCESS in a.query
        and _selects(a.query, job=thresholds.HEALTH_PROBE_JOB)
    ]
    if not alerts:
        report(
            f'no alert on {thresholds.METRIC_PROBE_SUCCESS}{{job="{thresholds.HEALTH_PROBE_JOB}"}} '
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
                f"{thresholds.METRIC_PROBE_SUCCESS} alert must fire below a threshold in (0, 1] "
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


def validate_metrics_scraped(args: StackValidationArgs, report: ReportViolation) -> None:
    """A Prometheus Operator ServiceMonitor scrapes /metrics from a port of the API Service."""
    services = [
        r
        for r in args.resources
        if r.resource_type == SERVICE and k8s_name(r.props, r.name) == thresholds.API_DEPLOYMENT
    ]
    if not services:
        args.not_applicable(f"no Service {thresholds.API_DEPLOYMENT} in the stack")
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
            e.get("port") in port_names and e.get("path", "/metrics") == thresholds.METRICS_PATH
            for e in endpoints
            if isinstance(e, Mapping)
        )
        if selects and in_namespace and scraped:
            return
    found = ", ".join(k8s_name(m.props, m.name) for m in monitors) or "none"
    report(
        f"no ServiceMonitor selects Service {thresholds.API_DEPLOYMENT} (labels "
        f"{', '.join(f'{k}={v}' for k, v in sorted(service_labels.items())) or 'none'}) and "
        f"scrapes {thresholds.METRICS_PATH} on one of its ports "
        f"({', '.join(sorted(port_names)) or 'none named'}); found: {found}. Nothing scrapes "
        "the metrics the alerts read",
        service.urn,
    )
