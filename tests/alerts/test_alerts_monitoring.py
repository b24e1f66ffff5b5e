"""promtool unit tests of the `flowchat-monitoring` alerts (stacks/alerts.py), both sides of each
runbook line: health probe, queue depth, P95 latency, Chroma volume usage and fill forecast."""

from __future__ import annotations

from alerts_testlib import (
    NAMESPACE,
    Run,
    case,
    expected_annotations,
    expected_labels,
    quiet,
    requires_promtool,
)

from stacks.alerts import CHROMA_PVC

pytestmark = requires_promtool

TARGET = f"http://flowchat-api.{NAMESPACE}.svc:8000/api/health/ping"
PROBE = f'probe_success{{job="flowchat-health",instance="{TARGET}"}}'


def firing(alert: str, at: str, *, value: str = "", target: str = "", **labels: str) -> dict:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": expected_labels(alert, **labels),
                "exp_annotations": expected_annotations(alert, value=value, instance=target),
            }
        ],
    }


def test_two_consecutive_failed_probes_fire(promtool_test: Run) -> None:
    # Probes every 30 s: 0 at 60 s and 90 s. Firing once both failures are the whole window.
    alert = "FlowchatHealthCheckFailing"
    labels = {"job": "flowchat-health", "instance": TARGET}
    promtool_test(
        [
            case(
                "30s",
                {PROBE: "1 1 0 0 1 1 1"},
                [
                    *quiet(alert, "75s", "90s"),  # one failure seen so far
                    firing(alert, "105s", target=TARGET, **labels),
                    *quiet(alert, "135s"),  # recovered
                ],
            )
        ]
    )


def test_one_failed_probe_does_not_fire(promtool_test: Run) -> None:
    promtool_test(
        [
            case(
                "30s",
                {PROBE: "1 1 0 1 1 0 1 1"},
                quiet("FlowchatHealthCheckFailing", "60s", "75s", "90s", "105s", "165s", "195s"),
            )
        ]
    )


QUEUED = 'rq_jobs{queue="flow_tasks",status="queued",instance="rq-exporter:9726"}'


def test_queue_over_20_for_5_minutes_fires(promtool_test: Run) -> None:
    alert = "FlowchatQueueBacklog"
    promtool_test(
        [
            case(
                "1m",
                {QUEUED: "21x10"},
                [*quiet(alert, "4m"), firing(alert, "5m", value="21", queue="flow_tasks")],
            )
        ]
    )


def test_queue_at_20_does_not_fire(promtool_test: Run) -> None:
    promtool_test([case("1m", {QUEUED: "20x15"}, quiet("FlowchatQueueBacklog", "5m", "10m"))])


def test_queue_over_20_for_only_4_minutes_does_not_fire(promtool_test: Run) -> None:
    # 21 at 0..4 min, back to 0 at 5 min: pending for 4 minutes, never firing.
    promtool_test(
        [case("1m", {QUEUED: "21x4 0x5"}, quiet("FlowchatQueueBacklog", "4m", "5m", "6m"))]
    )


def latency(per_minute: dict[str, int]) -> dict[str, str]:
    """Cumulative histogram buckets growing by `per_minute` observations each minute."""
    return {
        f'flowchat_chat_latency_seconds_bucket{{le="{le}"}}': f"0+{n}x20"
        for le, n in per_minute.items()
    }


def test_p95_latency_of_11_seconds_fires(promtool_test: Run) -> None:
    # 90 % of answers within 10 s, the rest within 12 s: P95 = 10 + 2 * 0.5 = 11 s.
    alert = "FlowchatChatLatencyP95High"
    buckets = latency({"5": 0, "10": 90, "12": 100, "+Inf": 100})
    promtool_test([case("1m", buckets, [firing(alert, "10m", value="11")])])


def test_p95_latency_of_9_seconds_does_not_fire(promtool_test: Run) -> None:
    # 75 % within 5 s, all within 10 s: P95 = 5 + 5 * 0.8 = 9 s.
    buckets = latency({"5": 75, "10": 100, "12": 100, "+Inf": 100})
    promtool_test([case("1m", buckets, quiet("FlowchatChatLatencyP95High", "10m", "15m"))])


def volume(pvc: str, used: str, capacity: str = "1000x200") -> dict[str, str]:
    labels = f'namespace="{NAMESPACE}",persistentvolumeclaim="{pvc}",node="aks-node-1"'
    return {
        f"kubelet_volume_stats_used_bytes{{{labels}}}": used,
        f"kubelet_volume_stats_capacity_bytes{{{labels}}}": capacity,
    }


def test_chroma_volume_85_percent_full_fires(promtool_test: Run) -> None:
    alert = "FlowchatVectorStoreVolumeFilling"
    labels = {"namespace": NAMESPACE, "persistentvolumeclaim": CHROMA_PVC}
    promtool_test(
        [case("1m", volume(CHROMA_PVC, "850x20"), [firing(alert, "10m", value="85%", **labels)])]
    )


def test_chroma_volume_50_percent_full_does_not_fire(promtool_test: Run) -> None:
    promtool_test(
        [case("1m", volume(CHROMA_PVC, "500x20"), quiet("FlowchatVectorStoreVolumeFilling", "10m"))]
    )


def test_volume_alert_is_bound_to_the_chroma_pvc(promtool_test: Run) -> None:
    # Another claim in the namespace at 95 % is not the vector store's business.
    series = volume("data-flowchat-redis-0", "950x20")
    promtool_test([case("1m", series, quiet("FlowchatVectorStoreVolumeFilling", "10m"))])


def test_volume_filling_within_24_hours_fires(promtool_test: Run) -> None:
    # +4 bytes / 5 min = 48 / h: at 3 h, 244 used + 1152 in 24 h > 1000 capacity.
    alert = "FlowchatVectorStoreVolumeFullSoon"
    labels = {"namespace": NAMESPACE, "persistentvolumeclaim": CHROMA_PVC}
    series = volume(CHROMA_PVC, "100+4x60", "1000x60")
    promtool_test(
        [case("5m", series, [*quiet(alert, "20m"), firing(alert, "3h", value="", **labels)])]
    )


def test_slow_growth_does_not_forecast_a_full_volume(promtool_test: Run) -> None:
    # +2 bytes / 5 min = 24 / h: at 3 h, 172 used + 576 in 24 h < 1000.
    series = volume(CHROMA_PVC, "100+2x60", "1000x60")
    promtool_test([case("5m", series, quiet("FlowchatVectorStoreVolumeFullSoon", "3h", "5h"))])
