"""Alert thresholds: each runbook alert exists and fires at or below the runbook's bound
(runbook: "Monitoring" and "Troubleshooting").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

from . import thresholds
from .common import (
    METRIC_VOLUME_CAPACITY,
    METRIC_VOLUME_USED,
    STATEFUL_SET,
    Alert,
    _get,
    _is,
    _num,
    _selects,
    k8s_name,
    seconds,
    settings,
    stack_alerts,
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
        if thresholds.METRIC_RQ_JOBS in a.query
        and _selects(a.query, queue=thresholds.QUEUE_NAME, status="queued")
    ]
    selector = f'{thresholds.METRIC_RQ_JOBS}{{queue="{thresholds.QUEUE_NAME}",status="queued"}}'
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
    bucket = f"{thresholds.METRIC_CHAT_LATENCY}_bucket"
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


def _queued_alerts(args: StackValidationArgs, queue: str) -> list[Alert]:
    return [
        a
        for a in stack_alerts(args.resources)
        if thresholds.METRIC_RQ_JOBS in a.query and _selects(a.query, queue=queue, status="queued")
    ]


def validate_ingest_backlog_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on the flow_ingest queue depth ("uploads are waiting") fires above <= 50 jobs
    held for <= 15m; no queued-jobs alert mixes the ingestion and chat queues."""
    cfg = settings("ingest-backlog-alert", args)
    queue = thresholds.INGEST_QUEUE_NAME
    alerts = _queued_alerts(args, queue)
    if not alerts:
        report(
            f'no ingestion-backlog alert on {thresholds.METRIC_RQ_JOBS}{{queue="{queue}",'
            'status="queued"} in any RuleGroup: waiting uploads would go unnoticed',
            None,
        )
    for alert in alerts:
        _check_threshold(alert, "ingestion-backlog", float(cfg["maxQueueDepth"]), report)
        if alert.for_seconds > seconds(cfg["maxFor"]):
            found = "unparseable" if math.isinf(alert.for_seconds) else _num(alert.for_seconds)
            report(
                f"ingestion-backlog alert {alert.where}: for {found}s exceeds the runbook's bound "
                f"{cfg['maxFor']} ({_num(seconds(cfg['maxFor']))}s)",
                alert.urn,
            )
    queues = (thresholds.QUEUE_NAME, thresholds.INGEST_QUEUE_NAME)
    for alert in stack_alerts(args.resources):
        compact = alert.query.replace(" ", "")
        if thresholds.METRIC_RQ_JOBS not in compact or 'status="queued"' not in compact:
            continue
        if sum(_selects(alert.query, queue=q) for q in queues) != 1:
            report(
                f"queued-jobs alert {alert.where}: selects no single queue (one of "
                f'{", ".join(queues)} with queue="..."): chat and upload backlogs are different '
                "incidents with different runbook sections",
                alert.urn,
            )


def validate_redis_memory_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on Redis used / max memory fires above <= 0.8."""
    cfg = settings("redis-memory-alert", args)
    used, limit = (
        thresholds.METRIC_REDIS_MEMORY_USED_BYTES,
        thresholds.METRIC_REDIS_MEMORY_MAX_BYTES,
    )
    alerts = [a for a in stack_alerts(args.resources) if used in a.query and limit in a.query]
    if not alerts:
        report(f"no Redis memory alert on {used} / {limit} in any RuleGroup", None)
    for alert in alerts:
        _check_threshold(alert, "Redis memory", float(cfg["maxUsageRatio"]), report)


_MIN_VOTES = re.compile(r">=?\s*([0-9]+(?:\.[0-9]+)?)\s*\)\s*\)?\s*$")


def validate_downvote_alert(args: StackValidationArgs, report: ReportViolation) -> None:
    """An alert on the down-vote share fires above <= 0.3, and only with a minimum vote count
    (2 <= minimum <= 20), so one vote cannot page."""
    cfg = settings("downvote-alert", args)
    metric = thresholds.METRIC_FEEDBACK
    alerts = [
        a
        for a in stack_alerts(args.resources)
        if metric in a.query and _selects(a.query, vote="down")
    ]
    if not alerts:
        report(f'no down-vote alert on {metric}{{vote="down"}} in any RuleGroup', None)
    bound = float(cfg["maxMinVotes"])
    for alert in alerts:
        _check_threshold(alert, "down-vote", float(cfg["maxDownvoteRatio"]), report)
        minimum = _MIN_VOTES.search(alert.query)
        votes = float(minimum.group(1)) if minimum else None
        if votes is None or votes < 2:
            report(
                f"down-vote alert {alert.where}: no minimum vote count of at least 2 (`... and "
                f"on() (sum(increase({metric}[...])) >= N)`): a single down-vote would page",
                alert.urn,
            )
        elif votes > bound:
            report(
                f"down-vote alert {alert.where}: minimum of {_num(votes)} votes exceeds the "
                f"runbook's bound {_num(bound)}",
                alert.urn,
            )
