"""stacks/alerts.py as data: Thresholds, the rule list, the rules file and its CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alerts_testlib import NAMESPACE, PROMTOOL, requires_promtool
from pydantic import ValidationError

from app import contracts
from stacks.alerts import (
    ALERTS,
    CHROMA_PVC,
    METRIC_VOLUME_CAPACITY,
    METRIC_VOLUME_USED,
    RUNBOOK_ANCHORS,
    Thresholds,
    alert_rules,
    daily_tokens_query,
    describe_duration,
    parse_duration,
    prometheus_rules_file,
)

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = "https://github.com/flowchat/flowchat/blob/main/docs/runbook.md"

EXPECTED = {  # alert -> (group, severity, runbook anchor)
    "FlowchatHealthCheckFailing": ("monitoring", "critical", "health-check-failing"),
    "FlowchatQueueBacklog": ("monitoring", "warning", "queue-backlog"),
    "FlowchatChatLatencyP95High": ("monitoring", "warning", "chat-latency-p95-high"),
    "FlowchatVectorStoreVolumeFilling": ("monitoring", "warning", "vector-store-volume-filling"),
    "FlowchatVectorStoreVolumeFullSoon": (
        "monitoring",
        "warning",
        "vector-store-volume-full-soon",
    ),
    "FlowchatWorkersDown": ("troubleshooting", "critical", "workers-down"),
    "FlowchatRedisUnreachable": ("troubleshooting", "critical", "redis-unreachable"),
    "FlowchatFlowErrors": ("troubleshooting", "critical", "flow-errors"),
    "FlowchatEmptyAnswers": ("troubleshooting", "warning", "empty-answers"),
    "FlowchatIngestBacklog": ("monitoring", "warning", "ingestion-backlog"),
    "FlowchatRedisMemoryHigh": ("monitoring", "warning", "redis-memory-high"),
    "FlowchatDownVotes": ("troubleshooting", "warning", "down-votes"),
    "FlowchatFlowTokenBudget": ("monitoring", "warning", "daily-flow-tokens-over-budget"),
    "FlowchatAnswerQualityDropped": ("troubleshooting", "warning", "answer-quality-dropped"),
    "FlowchatAnswerEvaluationStale": ("troubleshooting", "warning", "answer-evaluation-stale"),
}


def rules(thresholds: Thresholds | None = None) -> dict:
    found = alert_rules(thresholds or Thresholds(), namespace=NAMESPACE, chroma_pvc=CHROMA_PVC)
    return {r.name: r for r in found}


def test_thresholds_default_to_the_runbook() -> None:
    t = Thresholds()
    assert t.health_probe_interval_seconds == contracts.HEALTH_PROBE_INTERVAL_SECONDS == 30
    assert t.health_probe_failures == contracts.HEALTH_PROBE_FAILURES == 2
    assert (t.queue_depth, t.queue_depth_for) == (20, "5m")
    assert t.latency_p95_seconds == 10.0
    assert (t.volume_usage_ratio, t.volume_fill_forecast_hours) == (0.8, 24)
    assert (t.flow_error_ratio, t.empty_answer_ratio) == (0.2, 0.3)


def test_thresholds_read_camel_case_config_keys() -> None:
    t = Thresholds.model_validate({"queueDepth": 15, "queueDepthFor": "3m", "latencyP95Seconds": 8})
    assert (t.queue_depth, t.queue_depth_for, t.latency_p95_seconds) == (15, "3m", 8.0)
    assert Thresholds(queue_depth=12).queue_depth == 12  # populate_by_name


@pytest.mark.parametrize(
    "raw",
    [
        {"queueDepth": "twenty"},
        {"queueDepth": "20"},
        {"queueDepth": True},
        {"queueDepth": 20.5},
        {"latencyP95Seconds": "10s"},
        {"queueDepthFor": "5 minutes"},
        {"queueDepthFor": 300},
        {"queueDepthLimit": 20},
    ],
)
def test_thresholds_reject_wrong_types_and_unknown_keys(raw: dict) -> None:
    with pytest.raises(ValidationError) as err:
        Thresholds.model_validate(raw)
    assert next(iter(raw)) in str(err.value)


def test_every_alert_has_group_severity_labels_and_runbook_link() -> None:
    found = rules()
    assert set(found) == set(EXPECTED) == set(RUNBOOK_ANCHORS)
    for name, (group, severity, anchor) in EXPECTED.items():
        rule = found[name]
        assert rule.group == group, name
        assert rule.all_labels == {"service": "flowchat", "severity": severity}, name
        assert rule.runbook_url == f"{RUNBOOK}#{anchor}", name
        assert set(rule.annotations) == {"summary", "description", "runbook_url", "incident"}
        assert rule.summary and rule.description
        assert re.fullmatch(r"[a-z0-9-]+", anchor)


def test_alerts_use_only_contract_metric_names() -> None:
    allowed = {v for k, v in vars(contracts).items() if k.startswith("METRIC_")}
    allowed |= {f"{contracts.METRIC_CHAT_LATENCY}_bucket", METRIC_VOLUME_USED}
    allowed |= {METRIC_VOLUME_CAPACITY}
    functions = {"max_over_time", "histogram_quantile", "rate", "sum", "max", "predict_linear"}
    functions |= {"absent", "by", "le", "queue", "namespace", "persistentvolumeclaim"}
    functions |= {"or", "vector", "increase", "and", "on", "without", "instance", "pod"}
    functions |= {"score", "time"}  # the evaluation scores' label; time() of the staleness rule
    for rule in rules().values():
        text = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^]]*\]', "", rule.expr)
        names = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", text)) - functions
        assert names <= allowed, (rule.name, names - allowed)


def test_selectors_match_the_contracts() -> None:
    found = rules()
    assert 'probe_success{job="flowchat-health"}[1m]' in found["FlowchatHealthCheckFailing"].expr
    assert 'rq_jobs{queue="flow_tasks",status="queued"}' in found["FlowchatQueueBacklog"].expr
    pvc = f'{{namespace="{NAMESPACE}",persistentvolumeclaim="{CHROMA_PVC}"}}'
    assert f"kubelet_volume_stats_used_bytes{pvc}" in found["FlowchatVectorStoreVolumeFilling"].expr
    assert (
        f"kubelet_volume_stats_capacity_bytes{pvc}"
        in found["FlowchatVectorStoreVolumeFilling"].expr
    )
    assert "predict_linear" in found["FlowchatVectorStoreVolumeFullSoon"].expr


def test_thresholds_flow_into_the_expressions() -> None:
    t = Thresholds.model_validate(
        {
            "queueDepth": 12,
            "queueDepthFor": "3m",
            "latencyP95Seconds": 7.5,
            "volumeUsageRatio": 0.7,
            "volumeFillForecastHours": 48,
            "healthProbeIntervalSeconds": 15,
            "healthProbeFailures": 3,
            "flowErrorRatio": 0.1,
            "emptyAnswerRatio": 0.25,
        }
    )
    found = rules(t)
    assert found["FlowchatQueueBacklog"].expr.endswith("> 12")
    assert found["FlowchatQueueBacklog"].for_ == "3m"
    assert found["FlowchatChatLatencyP95High"].expr.endswith("> 7.5")
    assert found["FlowchatVectorStoreVolumeFilling"].expr.endswith("> 0.7")
    assert ", 172800)" in found["FlowchatVectorStoreVolumeFullSoon"].expr
    assert "[45s]" in found["FlowchatHealthCheckFailing"].expr  # 3 probes of 15 s
    assert found["FlowchatFlowErrors"].expr.endswith("> 0.1")
    assert found["FlowchatEmptyAnswers"].expr.endswith("> 0.25")


def test_rules_file_groups_and_entries() -> None:
    document = prometheus_rules_file(Thresholds(), namespace=NAMESPACE, chroma_pvc=CHROMA_PVC)
    groups = {g["name"]: g["rules"] for g in document["groups"]}
    assert set(groups) == {"flowchat-monitoring", "flowchat-troubleshooting"}
    entries = {r["alert"]: r for g in groups.values() for r in g}
    for name, (group, _, _) in EXPECTED.items():
        assert entries[name] in groups[f"flowchat-{group}"]
    assert "for" not in entries["FlowchatHealthCheckFailing"]  # the window does the counting
    assert entries["FlowchatQueueBacklog"]["for"] == "5m"
    assert all(parse_duration(e.get("for", "0s")) <= 1800 for e in entries.values())


@requires_promtool
def test_cli_writes_a_rules_file_promtool_accepts(tmp_path: Path) -> None:
    out = tmp_path / "alerts.staging.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "stacks.alerts", "--stack", "staging", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {len(EXPECTED)} alerts" in result.stderr
    document = yaml.safe_load(out.read_text())
    assert sum(len(g["rules"]) for g in document["groups"]) == len(EXPECTED)
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(out)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(EXPECTED)} rules found" in check.stdout


def test_cli_reports_invalid_stack_thresholds(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n  flowchat:thresholds:\n    queueDepth: lots\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "stacks.alerts", "--stack", "bad", "--root", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "flowchat:thresholds of stack bad" in result.stderr
    assert "queueDepth" in result.stderr


def test_describe_duration_words() -> None:
    assert describe_duration("2m") == "2 minutes"
    assert describe_duration("1h30m") == "1 hour 30 minutes"
    assert describe_duration("1m1s") == "1 minute 1 second"


def test_message_durations_agree_with_each_rules_for() -> None:
    """A description that says "for N minutes" says the rule's own `for`, never a copy."""
    checked = 0
    for rule in rules().values():
        for spelled in re.findall(
            r"for ((?:\d+ (?:day|hour|minute|second)s? ?)+)", rule.description
        ):
            assert spelled.strip() == describe_duration(rule.for_), rule.name
            checked += 1
    assert checked >= 2  # workers down, Redis unreachable


def test_flow_error_alert_counts_timeouts_and_errors_and_is_defined_without_failures() -> None:
    query = rules()["FlowchatFlowErrors"].query
    assert 'status=~"5..|timeout|error"' in query
    assert "or vector(0)" in query


def _section(anchor: str) -> str:
    text = (REPO / "docs" / "runbook.md").read_text()
    headings = re.split(r"\n### ", text)
    (found,) = [
        h for h in headings if re.sub(r"[^a-z0-9]+", "-", h.split("\n")[0].lower()) == anchor
    ]
    return " ".join(found.split())  # one line: the runbook wraps text anywhere


def test_runbook_sections_of_the_new_alerts_state_their_thresholds() -> None:
    """The numbers a responder reads are the ones the rules use (policies.runbook.thresholds)."""
    t = Thresholds()
    section = _section(RUNBOOK_ANCHORS["FlowchatIngestBacklog"])
    assert f"more than {t.ingest_queue_depth} ingestion jobs" in section
    assert describe_duration(t.ingest_queue_depth_for) in section
    assert "Uploads are waiting" in section and "Chats are not waiting" in section
    section = _section(RUNBOOK_ANCHORS["FlowchatRedisMemoryHigh"])
    assert f"more than {round(t.redis_memory_ratio * 100)} %" in section
    section = _section(RUNBOOK_ANCHORS["FlowchatDownVotes"])
    assert f"more than {round(t.downvote_ratio * 100)} %" in section
    assert f"at least {t.downvote_min_votes} votes" in section
    section = _section(RUNBOOK_ANCHORS["FlowchatFlowTokenBudget"])
    assert f"more than {t.flow_tokens_daily_budget:,} tokens" in section
    spec = ALERTS["FlowchatFlowTokenBudget"]
    assert f"for {describe_duration(spec.for_)}" in section
    assert daily_tokens_query() in section  # the alert's own query, to paste into Grafana
    section = _section(RUNBOOK_ANCHORS["FlowchatAnswerQualityDropped"])
    assert f"more than {contracts.EVAL_DROP_TOLERANCE:g} below" in section
    assert (
        f"best of the last {describe_duration(ALERTS['FlowchatAnswerQualityDropped'].window)}"
        in section
    )
