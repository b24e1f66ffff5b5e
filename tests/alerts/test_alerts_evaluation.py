"""promtool unit tests of FlowchatAnswerQualityDropped (stacks/alerts.py): the nightly answer
evaluation's scores (pushed by ops.evaluate to a Pushgateway) against their best of the week,
both sides of the tolerance, per score and per stack; and FlowchatAnswerEvaluationStale, the
nightly that stopped pushing."""

from __future__ import annotations

from alerts_testlib import (
    NAMESPACE,
    Run,
    case,
    expected_annotations,
    expected_labels,
    quiet,
    requires_promtool,
    rules,
)

from app import contracts
from ops.evaluation import export
from ops.evaluation.export import score_label
from policies.runbook import thresholds as limits
from stacks.alerts import describe_duration, parse_duration

pytestmark = requires_promtool

ALERT = "FlowchatAnswerQualityDropped"
SERIES = 'flowchat_eval_score{{job="flowchat-eval",namespace="{ns}",score="{score}"}}'
REFUSED = SERIES.format(ns=NAMESPACE, score=score_label("unanswerable refused"))
HIT = SERIES.format(ns=NAMESPACE, score=score_label("hit@1"))
OTHER_STACK = SERIES.format(ns=contracts.namespace_for("prod"), score="hit_at_1")
# the scores change once a night and the rule has no `for`: an hourly evaluation sees every
# change (promtool's 15 s default evaluates every rule 5,760 times a simulated day, ~1 min a test)
HOURLY = "1h"


def test_the_rule_reads_what_ops_evaluate_pushes() -> None:
    rule = rules()[ALERT]
    assert contracts.METRIC_EVAL_SCORE in rule.query and contracts.EVAL_PUSH_JOB in rule.query
    assert rule.threshold == contracts.EVAL_DROP_TOLERANCE == 0.05
    assert limits.ALERTS[ALERT].window == "7d" and rule.for_ == "0s"
    assert describe_duration("7d") in rule.summary


def test_a_score_falling_beyond_the_tolerance_fires_for_that_score(promtool_test: Run) -> None:
    # one point a day (the nightly run); the Pushgateway keeps serving the last value
    promtool_test(
        [
            case(
                "1d",
                {REFUSED: "0.84 0.84 0.84 0.70", HIT: "0.85 0.85 0.85 0.85"},
                [
                    *quiet(ALERT, "2d"),
                    {
                        "eval_time": "3d",
                        "alertname": ALERT,
                        "exp_alerts": [
                            {
                                "exp_labels": expected_labels(ALERT, score="unanswerable_refused"),
                                "exp_annotations": {
                                    k: v.replace("{{ $labels.score }}", "unanswerable_refused")
                                    for k, v in expected_annotations(ALERT, value="0.14").items()
                                },
                            }
                        ],
                    },
                ],
            )
        ],
        evaluation_interval=HOURLY,
    )


def test_a_drop_within_the_tolerance_or_in_another_stack_does_not_fire(
    promtool_test: Run,
) -> None:
    promtool_test(
        [
            case("1d", {HIT: "0.85 0.85 0.81 0.80"}, quiet(ALERT, "2d", "3d")),
            case("1d", {OTHER_STACK: "0.85 0.85 0.50"}, quiet(ALERT, "2d")),
            case("1d", {HIT: "0.70 0.80 0.85"}, quiet(ALERT, "1d", "2d")),  # rising
        ],
        evaluation_interval=HOURLY,
    )


def test_a_drop_older_than_the_window_is_forgotten(promtool_test: Run) -> None:
    # 0.9 nine days ago, 0.8 since: a week later the best of the window is 0.8 again
    promtool_test(
        [case("1d", {HIT: "0.9 0.8x10"}, [*quiet(ALERT, "9d", "10d")])], evaluation_interval=HOURLY
    )


STALE = "FlowchatAnswerEvaluationStale"
LAST_RUN = f'{contracts.METRIC_EVAL_LAST_RUN}{{job="flowchat-eval",namespace="{NAMESPACE}"}}'
DAY = 86400


def _pushes(*days: int, hours_each: int = 24) -> str:
    """The Pushgateway's hourly-scraped value of the last-run timestamp: a push at the start of
    each of `days` (seconds since the epoch of promtool's clock), served until the next."""
    return " ".join(f"{day * DAY}+0x{hours_each - 1}" for day in days)


def test_the_staleness_rule_reads_what_ops_evaluate_pushes() -> None:
    rule = rules()[STALE]
    assert export.LAST_RUN_METRIC == contracts.METRIC_EVAL_LAST_RUN
    assert contracts.METRIC_EVAL_LAST_RUN in rule.query and contracts.EVAL_PUSH_JOB in rule.query
    assert rule.threshold == parse_duration(limits.ALERTS[STALE].window) == 2 * DAY
    assert rule.no_data_ok  # a stack the nightly does not evaluate (prod) has no series


def test_a_nightly_that_stops_pushing_fires_after_the_window(promtool_test: Run) -> None:
    # pushed on days 0 and 1, then never again: 2 days after the last push (hour 72) it is not
    # yet over the window, an hour later it is
    promtool_test(
        [
            case(
                "1h",
                {LAST_RUN: f"{_pushes(0)} {DAY}+0x99"},
                [
                    *quiet(STALE, "47h", "72h"),
                    {
                        "eval_time": "73h",
                        "alertname": STALE,
                        "exp_alerts": [
                            {
                                "exp_labels": expected_labels(STALE),
                                "exp_annotations": expected_annotations(STALE),
                            }
                        ],
                    },
                ],
            )
        ],
        evaluation_interval=HOURLY,
    )


def test_a_nightly_that_pushes_every_day_or_another_stacks_silence_does_not_fire(
    promtool_test: Run,
) -> None:
    other = LAST_RUN.replace(NAMESPACE, contracts.namespace_for("prod"))
    promtool_test(
        [
            case("1h", {LAST_RUN: _pushes(0, 1, 2, 3, 4)}, quiet(STALE, "50h", "100h", "119h")),
            case("1h", {other: f"{_pushes(0)} 0+0x99"}, quiet(STALE, "100h")),
        ],
        evaluation_interval=HOURLY,
    )
