"""promtool unit tests of the `flowchat-troubleshooting` alerts (stacks/alerts.py): workers down,
Redis unreachable, Flow failure ratio (5xx, timeouts, connection errors) and empty answers, each
on both sides of its line."""

from __future__ import annotations

from typing import Any

from alerts_testlib import (
    Run,
    case,
    expected_annotations,
    expected_labels,
    quiet,
    requires_promtool,
    rules,
)

pytestmark = requires_promtool


def firing(alert: str, at: str, *, value: str = "", **labels: str) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": expected_labels(alert, **labels),
                "exp_annotations": expected_annotations(alert, value=value),
            }
        ],
    }


WORKERS = 'rq_workers{queue="flow_tasks",instance="rq-exporter:9726"}'


def test_zero_workers_for_2_minutes_fires(promtool_test: Run) -> None:
    alert = "FlowchatWorkersDown"
    promtool_test(
        [
            case(
                "1m",
                {WORKERS: "2 2 0x10"},
                [*quiet(alert, "1m", "3m"), firing(alert, "4m", queue="flow_tasks")],
            )
        ]
    )


def test_one_worker_does_not_fire(promtool_test: Run) -> None:
    promtool_test([case("1m", {WORKERS: "1x10"}, quiet("FlowchatWorkersDown", "5m", "10m"))])


QUEUED = 'rq_jobs{queue="flow_tasks",status="queued",instance="rq-exporter:9726"}'


def test_queue_metrics_vanishing_fires_redis_unreachable(promtool_test: Run) -> None:
    # rq-exporter cannot read Redis: its series go stale at 3 min; 2 minutes later the alert fires.
    alert = "FlowchatRedisUnreachable"
    promtool_test(
        [
            case(
                "1m",
                {QUEUED: "3 3 3 stale"},
                [*quiet(alert, "2m", "4m"), firing(alert, "5m", queue="flow_tasks")],
            )
        ]
    )


def test_queue_metrics_present_do_not_fire_redis_unreachable(promtool_test: Run) -> None:
    promtool_test([case("1m", {QUEUED: "0x10"}, quiet("FlowchatRedisUnreachable", "5m", "10m"))])


def flow(ok: int, errors: int, throttled: int = 0) -> dict[str, str]:
    metric = "flowchat_flow_requests_total"
    return {
        f'{metric}{{status="200"}}': f"0+{ok}x30",
        f'{metric}{{status="503"}}': f"0+{errors}x30",
        f'{metric}{{status="429"}}': f"0+{throttled}x30",
    }


def test_flow_5xx_ratio_of_30_percent_fires(promtool_test: Run) -> None:
    alert = "FlowchatFlowErrors"
    promtool_test(
        [
            case(
                "1m",
                flow(ok=70, errors=30),
                [*quiet(alert, "3m"), firing(alert, "10m", value="30%")],
            )
        ]
    )


def test_flow_5xx_ratio_of_10_percent_does_not_fire(promtool_test: Run) -> None:
    # 429s are retried throttling, not a Flow outage: 10 % 5xx plus 20 % 429 stays quiet.
    series = flow(ok=70, errors=10, throttled=20)
    promtool_test([case("1m", series, quiet("FlowchatFlowErrors", "10m", "20m"))])


def answers(empty: int, total: int) -> dict[str, str]:
    return {
        "flowchat_empty_answers_total": f"0+{empty}x60",
        'flowchat_chat_answers_total{outcome="empty"}': f"0+{empty}x60",
        'flowchat_chat_answers_total{outcome="answered"}': f"0+{total - empty}x60",
    }


def test_40_percent_empty_answers_fires(promtool_test: Run) -> None:
    alert = "FlowchatEmptyAnswers"
    promtool_test(
        [case("1m", answers(40, 100), [*quiet(alert, "10m"), firing(alert, "30m", value="40%")])]
    )


def test_20_percent_empty_answers_does_not_fire(promtool_test: Run) -> None:
    promtool_test([case("1m", answers(20, 100), quiet("FlowchatEmptyAnswers", "30m", "45m"))])


def flow_by_status(**per_minute: int) -> dict[str, str]:
    metric = "flowchat_flow_requests_total"
    return {f'{metric}{{status="{s}"}}': f"0+{n}x30" for s, n in per_minute.items()}


def test_flow_timeouts_alone_fire(promtool_test: Run) -> None:
    # Flow stops answering: requests time out or fail to connect, no 5xx is ever returned.
    alert = "FlowchatFlowErrors"
    series = {**flow_by_status(**{"200": 30, "timeout": 60}), **flow_by_status(error=10)}
    promtool_test([case("1m", series, [*quiet(alert, "3m"), firing(alert, "10m", value="70%")])])


def test_healthy_flow_traffic_evaluates_to_zero_not_to_nothing(promtool_test: Run) -> None:
    # No failure was ever counted (no 5xx/timeout/error series exist): quiet, and the ratio is 0
    # rather than an empty result (which Grafana would report as NoData).
    alert = "FlowchatFlowErrors"
    series = flow_by_status(**{"200": 100})
    test = case("1m", series, quiet(alert, "10m", "20m"))
    test["promql_expr_test"] = [
        {
            "expr": rules()[alert].query,
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 0}],
        }
    ]
    promtool_test([test])
