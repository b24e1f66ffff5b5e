"""Helpers of tests/alerts: expected labels and annotations, the promtool skip marker."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from app.contracts import namespace_for
from stacks.alerts import CHROMA_PVC, AlertRule, Thresholds, alert_rules

PROMTOOL = shutil.which("promtool")
STACK = "staging"
NAMESPACE = namespace_for(STACK)

requires_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (apt-get install --no-install-recommends prometheus); "
    "CI installs it",
)


def rules() -> dict[str, AlertRule]:
    """The staging alerts with runbook defaults, by name (what `rules_file` renders)."""
    found = alert_rules(Thresholds(), namespace=NAMESPACE, chroma_pvc=CHROMA_PVC)
    return {r.name: r for r in found}


def expected_annotations(alert: str, *, value: str = "", instance: str = "") -> dict[str, str]:
    """The annotations of `alert` as Prometheus renders them for one firing series."""
    rule = rules()[alert]
    rendered = {}
    for key, text in rule.annotations.items():
        text = text.replace("{{ $value | humanizePercentage }}", value)
        text = (
            text.replace("{{ $value }}", value)
            .replace("{{ $value | humanize }}", value)
            .replace("{{ $labels.instance }}", instance)
        )
        rendered[key] = text
    return rendered


def expected_labels(alert: str, **series: str) -> dict[str, str]:
    rule = rules()[alert]
    return {**rule.all_labels, **series}


# the `promtool_test` fixture (conftest.py): runs test cases, fails with promtool's output
Run = Callable[..., None]  # (tests, evaluation_interval="15s")


def case(interval: str, series: dict[str, str], checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "interval": interval,
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": checks,
    }


def quiet(alert: str, *times: str) -> list[dict[str, Any]]:
    return [{"eval_time": t, "alertname": alert, "exp_alerts": []} for t in times]
