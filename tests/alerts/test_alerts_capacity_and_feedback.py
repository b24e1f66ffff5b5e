"""promtool unit tests of the alerts for issues 10-12 (stacks/alerts.py), both sides of each
threshold: ingestion backlog (its own queue, not the chat backlog), Redis memory, down-votes."""

from __future__ import annotations

from alerts_testlib import (
    Run,
    case,
    expected_annotations,
    expected_labels,
    quiet,
    requires_promtool,
)

from policies.runbook import thresholds as limits

pytestmark = requires_promtool

INGEST = 'rq_jobs{queue="flow_ingest",status="queued",instance="rq-exporter:9726"}'
CHAT = 'rq_jobs{queue="flow_tasks",status="queued",instance="rq-exporter:9726"}'
USED = 'flowchat_redis_memory_used_bytes{instance="api-0"}'
MAX = 'flowchat_redis_memory_max_bytes{instance="api-0"}'
DOWN = 'flowchat_feedback_total{vote="down",instance="api-0"}'
UP = 'flowchat_feedback_total{vote="up",instance="api-0"}'


def firing(alert: str, at: str, *, value: str = "", **labels: str) -> dict:
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


def test_the_defaults_are_the_ones_tested_here() -> None:
    assert (limits.INGEST_QUEUE_DEPTH_THRESHOLD, limits.INGEST_QUEUE_DEPTH_FOR) == (50, "15m")
    assert limits.REDIS_MEMORY_RATIO == 0.8
    assert (limits.DOWNVOTE_RATIO, limits.DOWNVOTE_MIN_VOTES) == (0.3, 20)
    assert limits.ALERTS["FlowchatDownVotes"].window == "1h"


def test_uploads_waiting_fire_the_ingest_alert_and_not_the_chat_backlog(promtool_test: Run) -> None:
    alert = "FlowchatIngestBacklog"
    promtool_test(
        [
            case(
                "1m",
                {INGEST: "51x20", CHAT: "0x20"},
                [
                    *quiet(alert, "14m"),
                    firing(alert, "15m", value="51", queue="flow_ingest"),
                    *quiet("FlowchatQueueBacklog", "15m", "20m"),
                ],
            )
        ]
    )


def test_ingest_queue_at_the_threshold_does_not_fire(promtool_test: Run) -> None:
    promtool_test([case("1m", {INGEST: "50x30"}, quiet("FlowchatIngestBacklog", "20m", "30m"))])


def test_chat_backlog_fires_on_the_chat_queue_only(promtool_test: Run) -> None:
    promtool_test(
        [
            case(
                "1m",
                {CHAT: "21x10", INGEST: "0x10"},
                [
                    firing("FlowchatQueueBacklog", "6m", value="21", queue="flow_tasks"),
                    *quiet("FlowchatIngestBacklog", "6m"),
                ],
            )
        ]
    )


def test_redis_over_80_percent_of_maxmemory_fires(promtool_test: Run) -> None:
    alert = "FlowchatRedisMemoryHigh"
    promtool_test(
        [
            case(
                "1m",
                {USED: "810x10", MAX: "1000x10"},
                [*quiet(alert, "4m"), firing(alert, "5m", value="81%")],
            )
        ]
    )


def test_redis_under_80_percent_or_without_a_limit_does_not_fire(promtool_test: Run) -> None:
    alert = "FlowchatRedisMemoryHigh"
    promtool_test(
        [
            case("1m", {USED: "790x10", MAX: "1000x10"}, quiet(alert, "6m", "10m")),
            case("1m", {USED: "790x10", MAX: "0x10"}, quiet(alert, "6m", "10m")),  # no limit
        ]
    )


def test_many_down_votes_fire(promtool_test: Run) -> None:
    # 0.4 down- and 0.6 up-votes a minute: 40 % down, 60 votes an hour
    alert = "FlowchatDownVotes"
    promtool_test(
        [
            case(
                "1m",
                {DOWN: "0+0.4x150", UP: "0+0.6x150"},
                [*quiet(alert, "20m"), firing(alert, "120m", value="40%")],
            )
        ]
    )


def test_few_votes_or_a_low_ratio_do_not_fire(promtool_test: Run) -> None:
    alert = "FlowchatDownVotes"
    promtool_test(
        [
            # 100 % down-votes, but only 6 votes an hour: one unhappy user never pages
            case("1m", {DOWN: "0+0.1x150", UP: "0x150"}, quiet(alert, "90m", "120m", "150m")),
            # 20 % down-votes among 60 an hour
            case("1m", {DOWN: "0+0.2x150", UP: "0+0.8x150"}, quiet(alert, "90m", "150m")),
        ]
    )
