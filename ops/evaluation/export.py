"""The run's scores as Prometheus metrics, pushed to a Pushgateway (the scheduled evaluation
of a stack): ``flowchat_eval_score{score="hit_at_1"}`` ... plus the time of the run, grouped by
job ``flowchat-eval`` and the stack, so the Grafana panel and the drop alert
(``stacks.alerts``) read them."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from app.contracts import EVAL_PUSH_JOB, METRIC_EVAL_LAST_RUN, METRIC_EVAL_SCORE, namespace_for
from ops.evaluation.scoring import Summary

LAST_RUN_METRIC = METRIC_EVAL_LAST_RUN  # FlowchatAnswerEvaluationStale reads it


def score_label(name: str) -> str:
    """``hit@1`` -> ``hit_at_1``, ``citation support`` -> ``citation_support``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("@", "_at_")).strip("_")


def registry_for(summary: Summary) -> CollectorRegistry:
    registry = CollectorRegistry()
    scores = Gauge(
        METRIC_EVAL_SCORE,
        "Answer evaluation scores (0-1, higher is better)",
        ["score"],
        registry=registry,
    )
    for name, value in summary.gated().items():
        scores.labels(score_label(name)).set(value)
    last = Gauge(LAST_RUN_METRIC, "When the answer evaluation last ran", registry=registry)
    last.set_to_current_time()
    return registry


def push(gateway: str, stack: str, summary: Summary) -> None:
    """Push under job ``flowchat-eval`` and the stack's namespace (the alert and the panel
    select both; scrape the Pushgateway with ``honor_labels: true`` so they are kept)."""
    push_to_gateway(
        gateway,
        job=EVAL_PUSH_JOB,
        grouping_key={"namespace": namespace_for(stack)},
        registry=registry_for(summary),
    )
