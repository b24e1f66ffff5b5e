"""promtool unit tests of the daily Flow-token budget alert (issue 14), both sides of the
threshold; the counter is exported by every API and worker pod (one Redis-held value)."""

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

ALERT = "FlowchatFlowTokenBudget"


def tokens(kind: str, pod: str) -> str:
    return f'flowchat_flow_tokens_total{{kind="{kind}",key="k-0123456789ab",pod="{pod}"}}'


def spend(prompt_per_5m: int, completion_per_5m: int, samples: int) -> dict[str, str]:
    """The same counters as scraped from two pods (the sum must not count them twice)."""
    return {
        tokens(kind, pod): f"0+{per}x{samples}"
        for kind, per in (("prompt", prompt_per_5m), ("completion", completion_per_5m))
        for pod in ("api-0", "worker-0")
    }


def test_the_default_budget_and_window_are_the_ones_tested_here() -> None:
    assert limits.FLOW_TOKENS_DAILY_BUDGET == 5_000_000
    assert (limits.ALERTS[ALERT].window, limits.ALERTS[ALERT].for_) == ("24h", "10m")


def test_5000_tokens_a_minute_for_25_hours_fires(promtool_test: Run) -> None:
    # 5000 a minute: 7.2 M over 24 h, over the 5 M budget (which it passes after ~16.7 h)
    promtool_test(
        [
            case(
                "5m",
                spend(20_000, 5_000, 300),
                [
                    *quiet(ALERT, "12h"),
                    {
                        "eval_time": "25h",
                        "alertname": ALERT,
                        "exp_alerts": [
                            {
                                "exp_labels": expected_labels(ALERT),
                                "exp_annotations": expected_annotations(ALERT, value="7.2M"),
                            }
                        ],
                    },
                ],
            )
        ]
    )


def test_3000_tokens_a_minute_for_25_hours_does_not_fire(promtool_test: Run) -> None:
    # 3000 a minute: 4.32 M over 24 h, under the budget; counted once although two pods export it
    promtool_test([case("5m", spend(12_000, 3_000, 300), quiet(ALERT, "12h", "24h", "25h"))])
