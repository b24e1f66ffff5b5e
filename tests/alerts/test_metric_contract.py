"""Every metric that an alert, a dashboard panel or the KEDA trigger reads is one the running
service exposes (or, named here, one a standard exporter provides). Dashboards that query
metrics nothing emits are what this test prevents."""

from __future__ import annotations

import json
import re

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from app.contracts import (
    HEALTH_PROBE_JOB,
    METRIC_EVAL_LAST_RUN,
    METRIC_EVAL_SCORE,
    METRIC_KUBELET_VOLUME_CAPACITY_BYTES,
    METRIC_KUBELET_VOLUME_USED_BYTES,
    METRIC_PROBE_SUCCESS,
    QUEUE_KEY,
    QUEUE_NAME,
    WORKER_DEPLOYMENT,
)
from stacks.alerts import CHROMA_PVC, Thresholds, alert_rules
from stacks.render import render_stack

# produced outside the service: the blackbox exporter probing /api/health/ping, the kubelet
EXTERNAL = {
    METRIC_PROBE_SUCCESS,
    METRIC_KUBELET_VOLUME_USED_BYTES,
    METRIC_KUBELET_VOLUME_CAPACITY_BYTES,
    METRIC_EVAL_SCORE,  # pushed to a Pushgateway by the nightly ops.evaluate, not by the service
    METRIC_EVAL_LAST_RUN,  # ... with the time of that run
}
PROMQL_WORDS = {
    "sum",
    "rate",
    "irate",
    "increase",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "histogram_quantile",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "absent",
    "absent_over_time",
    "predict_linear",
    "clamp_min",
    "clamp_max",
    "max",
    "min",
    "avg",
    "count",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "vector",
    "scalar",
    "time",
    "le",
    "deriv",
    "delta",
    "changes",
    "resets",
    "topk",
    "bottomk",
    "label_replace",
    "abs",
    "ceil",
    "floor",
    "round",
    "inf",
    "nan",
    "count_over_time",
    "sum_over_time",
    "last_over_time",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, ranges and
    grouping clauses that are not PromQL functions or keywords."""
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r'"[^"]*"', " ", expr)
    names = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))
    return {n for n in names if n.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", n)}


def test_metric_names_are_parsed_from_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le) (rate(flowchat_chat_latency_seconds_bucket[5m])))"
        " > 10"
    )
    assert metric_names(expr) == {"flowchat_chat_latency_seconds_bucket"}
    assert metric_names('max_over_time(probe_success{job="x"}[1m]) < 1') == {"probe_success"}


def _dashboard_exprs() -> list[str]:
    exprs: list[str] = []
    for resource in render_stack("staging"):
        if resource.type == "grafana:oss/dashboard:Dashboard":
            model = json.loads(resource.inputs["configJson"])
            for panel in model.get("panels", []):
                exprs.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
    assert exprs, "the dashboard has no PromQL panels"
    return exprs


# Alerts written ahead of the code that exports their metrics, each with the branch building it.
# A name leaves this list once the service exposes it (the test below fails until it does).
# Empty since issues 10 (Redis memory) and 12 (feedback, first token) were merged.
PENDING: dict[str, str] = {}


def test_every_metric_read_by_alerts_and_dashboards_is_exposed(live_service) -> None:
    with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
        job = client.post("/api/chat", json={"message": "How do I restart the worker?"}).json()
        client.get(f"/api/chat/{job['id']}", params={"wait": 30})
        scraped = client.get("/metrics").text
    exposed = {
        sample.name
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    rules = alert_rules(Thresholds(), namespace="flowchat-staging", chroma_pvc=CHROMA_PVC)
    wanted = {name: f"alert {rule.name}" for rule in rules for name in metric_names(rule.expr)}
    for expr in _dashboard_exprs():
        for name in metric_names(expr):
            wanted.setdefault(name, "dashboard panel")
    assert set(wanted) & EXTERNAL, "expected the probe and volume alerts among the names"
    missing = {name: where for name, where in wanted.items() if name not in exposed | EXTERNAL}
    assert set(missing) - set(PENDING) == set(), (
        f"read by alerts/dashboards but not exposed by /metrics: {missing}"
    )
    exported_now = set(PENDING) & exposed
    assert exported_now == set(), f"now exposed: remove {exported_now} from PENDING"
    assert any(HEALTH_PROBE_JOB in rule.expr for rule in rules)


def test_keda_trigger_reads_the_list_the_api_fills(live_service) -> None:
    resources = render_stack("prod")
    scaled = next(
        r
        for r in resources
        if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"
        and r.inputs["spec"]["scaleTargetRef"]["name"] == WORKER_DEPLOYMENT  # the chat workers
    )
    trigger = scaled.inputs["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE_KEY
    # the API's queue really is that Redis list: jobs waiting there are what KEDA counts
    connection = redis.Redis.from_url(live_service.redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    assert queue.key == QUEUE_KEY
