"""promtool unit tests of FlowchatAnswerQualityDropped (stacks/alerts.py): the nightly answer
evaluation's scores (pushed by ops.evaluate to a Pushgateway) against their best of the week,
both sides of the tolerance, per score and per stack."""

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
from ops.evaluation.export import score_label
from policies.runbook import thresholds as limits
from stacks.alerts import describe_duration

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
