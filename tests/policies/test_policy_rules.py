"""policies/runbook/ in process: both real stacks pass; each mutation trips exactly its rule with
a message naming the resource, the value found and the bound."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from policies_testlib import analyze, find, mandatory, raw_rendered, rendered

from policies.runbook import rules
from stacks.render import RenderedResource

REPO = Path(__file__).resolve().parents[2]
MONITORING_RULES = "flowchat-rules-monitoring"


def fired(resources: list[RenderedResource], **config: dict) -> dict[str, list[str]]:
    """policy -> messages of its mandatory violations."""
    found: dict[str, list[str]] = {}
    for f in mandatory(analyze(resources, config or None)):
        found.setdefault(f.policy, []).append(f.message)
    return found


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_real_stacks_pass_every_mandatory_policy(stack: str) -> None:
    found = analyze(rendered(stack))
    assert mandatory(found) == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_raw_render_fails_only_on_what_the_stacks_do_not_deliver_yet(stack: str) -> None:
    """Today's program: the org-wide NotificationPolicy and a keyless API are exactly what the
    pack refuses; once the stacks route per rule and deliver API keys, nothing fires."""
    raw = raw_rendered(stack)
    org_wide = any(r.type.endswith(":NotificationPolicy") for r in raw)
    api = find(raw, ":Deployment", "flowchat-api").inputs["spec"]["template"]["spec"]
    keyless = not {e["name"] for c in api["containers"] for e in c.get("env") or []} & {
        "API_KEYS_FILE",
        "API_KEYS",
    }
    expected = {"alert-routing"} if org_wide else set()
    expected |= {"api-key-source"} if keyless else set()
    assert {f.policy for f in mandatory(analyze(raw))} == expected


def test_pack_declares_every_rule_with_runbook_defaults() -> None:
    built = {p.name: p for p in rules.policies()}
    assert set(built) == {r.name for r in rules.RULES} == set(rules.CONFIG)
    assert built["container-baseline"].enforcement_level.value == "advisory"
    assert built["queue-depth-alert"].enforcement_level.value == "mandatory"
    queue = built["queue-depth-alert"].config_schema
    assert queue is not None
    assert queue.properties["maxQueueDepth"]["default"] == 20
    assert queue.properties["maxFor"]["default"] == "5m"
    liveness = built["api-liveness-probe"].config_schema
    assert liveness is not None
    assert liveness.properties["maxPeriodSeconds"]["default"] == 30


def test_pack_main_does_not_serve_on_import() -> None:
    # Guarded by `if __name__ == "__main__"`: running it under another name returns at once.
    namespace = runpy.run_path(str(REPO / "policies" / "__main__.py"), run_name="not_main")
    assert namespace["PACK_NAME"] == "flowchat-runbook"


# --- threshold config of the stack (rendered through the program) -----------------------------
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"thresholds.queueDepth": "50"},
            {
                "queue-depth-alert": [
                    "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: "
                    "threshold 50 exceeds the runbook's bound 20"
                ]
            },
        ),
        (
            {"thresholds.queueDepthFor": "10m"},
            {
                "queue-depth-alert": [
                    "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: "
                    "for 600s exceeds the runbook's bound 5m (300s)"
                ]
            },
        ),
        (
            {"thresholds.latencyP95Seconds": "15"},
            {
                "chat-latency-alert": [
                    "P95 chat-latency alert FlowchatChatLatencyP95High in RuleGroup "
                    "flowchat-monitoring: threshold 15s exceeds the runbook's bound 10s"
                ]
            },
        ),
        (
            {"thresholds.volumeUsageRatio": "0.95"},
            {
                "chroma-volume-alert": [
                    "Chroma volume usage alert FlowchatVectorStoreVolumeFilling in RuleGroup "
                    "flowchat-monitoring: threshold 0.95 exceeds the runbook's bound 0.8"
                ]
            },
        ),
        (
            {"thresholds.volumeFillForecastHours": "6"},
            {
                "chroma-volume-alert": [
                    "Chroma volume forecast alert FlowchatVectorStoreVolumeFullSoon in RuleGroup "
                    "flowchat-monitoring: looks 6h ahead, less than the runbook's 24h"
                ]
            },
        ),
        (
            {"thresholds.ingestQueueDepth": "80"},
            {
                "ingest-backlog-alert": [
                    "ingestion-backlog alert FlowchatIngestBacklog in RuleGroup "
                    "flowchat-monitoring: threshold 80 exceeds the runbook's bound 50"
                ]
            },
        ),
        (
            {"thresholds.ingestQueueDepthFor": "1h"},
            {
                "ingest-backlog-alert": [
                    "ingestion-backlog alert FlowchatIngestBacklog in RuleGroup "
                    "flowchat-monitoring: for 3600s exceeds the runbook's bound 15m (900s)"
                ]
            },
        ),
        (
            {"thresholds.redisMemoryRatio": "0.95"},
            {
                "redis-memory-alert": [
                    "Redis memory alert FlowchatRedisMemoryHigh in RuleGroup flowchat-monitoring: "
                    "threshold 0.95 exceeds the runbook's bound 0.8"
                ]
            },
        ),
        (
            {"thresholds.downvoteRatio": "0.5"},
            {
                "downvote-alert": [
                    "down-vote alert FlowchatDownVotes in RuleGroup flowchat-troubleshooting: "
                    "threshold 0.5 exceeds the runbook's bound 0.3"
                ]
            },
        ),
        (
            {"thresholds.downvoteMinVotes": "100"},
            {
                "downvote-alert": [
                    "down-vote alert FlowchatDownVotes in RuleGroup flowchat-troubleshooting: "
                    "minimum of 100 votes exceeds the runbook's bound 20"
                ]
            },
        ),
        (
            {"thresholds.downvoteMinVotes": "1"},
            {
                "downvote-alert": [
                    "down-vote alert FlowchatDownVotes in RuleGroup flowchat-troubleshooting: no "
                    "minimum vote count of at least 2 (`... and on() "
                    "(sum(increase(flowchat_feedback_total[...])) >= N)`): a single down-vote "
                    "would page"
                ]
            },
        ),
        (
            {"thresholds.flowTokensDailyBudget": "6000000"},
            {
                "flow-token-budget-alert": [
                    "Flow token budget alert FlowchatFlowTokenBudget in RuleGroup "
                    "flowchat-monitoring: threshold 6000000 exceeds the runbook's bound 5000000"
                ]
            },
        ),
        # One knob feeds two objects (the liveness probe and the blackbox Probe / health alert),
        # so both of their rules fire.
        (
            {"thresholds.healthProbeIntervalSeconds": "60"},
            {
                "api-liveness-probe": [
                    "API Deployment flowchat-api: container api liveness probe periodSeconds 60 "
                    "exceeds the runbook's bound 30"
                ],
                "health-probe": [
                    "health Probe flowchat-health: interval 60s exceeds the runbook's bound 30s"
                ],
            },
        ),
        (
            {"thresholds.healthProbeFailures": "5"},
            {
                "api-liveness-probe": [
                    "API Deployment flowchat-api: container api liveness probe failureThreshold 5 "
                    "exceeds the runbook's bound 2"
                ],
                "health-alert": [
                    "health alert FlowchatHealthCheckFailing in RuleGroup flowchat-monitoring: "
                    "fires after 5 consecutive failed probes (window 150s + for 0s + evaluation "
                    "every 15s at 30s per probe), exceeding the runbook's bound 2"
                ],
            },
        ),
    ],
)
def test_loosened_threshold_config_fires_its_rule(
    override: dict[str, str], expected: dict[str, list[str]]
) -> None:
    assert fired(rendered("staging", **override)) == expected


def test_tightened_thresholds_pass() -> None:
    resources = rendered(
        "staging", **{"thresholds.queueDepth": "10", "thresholds.latencyP95Seconds": "5"}
    )
    assert fired(resources) == {}


# --- mutations of single resources --------------------------------------------------------------
def _api_liveness(resources: list[RenderedResource]) -> dict:
    api = find(resources, ":Deployment", "flowchat-api")
    return api.inputs["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]


def _rule(resources: list[RenderedResource], alert: str) -> dict:
    group = find(resources, ":RuleGroup", MONITORING_RULES)
    return next(r for r in group.inputs["rules"] if r["name"] == alert)


def test_liveness_period_60_fires_only_the_liveness_rule() -> None:
    resources = rendered("staging")
    _api_liveness(resources)["periodSeconds"] = 60
    assert fired(resources) == {
        "api-liveness-probe": [
            "API Deployment flowchat-api: container api liveness probe periodSeconds 60 exceeds "
            "the runbook's bound 30"
        ]
    }


def test_liveness_failure_threshold_5_and_unset_fire() -> None:
    resources = rendered("staging")
    _api_liveness(resources)["failureThreshold"] = 5
    assert fired(resources)["api-liveness-probe"] == [
        "API Deployment flowchat-api: container api liveness probe failureThreshold 5 exceeds "
        "the runbook's bound 2"
    ]
    del _api_liveness(resources)["failureThreshold"]
    assert fired(resources) == {
        "api-liveness-probe": [
            "API Deployment flowchat-api: container api liveness probe failureThreshold 3 "
            "(unset: Kubernetes uses 3) exceeds the runbook's bound 2"
        ]
    }


def test_liveness_on_another_path_fires() -> None:
    resources = rendered("staging")
    _api_liveness(resources)["httpGet"]["path"] = "/healthz"
    assert fired(resources) == {
        "api-liveness-probe": [
            "API Deployment flowchat-api: no liveness probe on /api/health/ping (found: /healthz)"
        ]
    }


def test_probe_interval_60s_fires_only_the_health_probe_rule() -> None:
    resources = rendered("staging")
    find(resources, ":Probe", "flowchat-health-probe").inputs["spec"]["interval"] = "1m"
    # The alert window (1m) now spans a single probe: still within 2 consecutive failures.
    assert fired(resources) == {
        "health-probe": [
            "health Probe flowchat-health: interval 1m exceeds the runbook's bound 30s"
        ]
    }


def test_missing_probe_fires() -> None:
    resources = [r for r in rendered("staging") if not r.type.endswith(":Probe")]
    assert fired(resources) == {
        "health-probe": [
            "no Prometheus Operator Probe with jobName flowchat-health in the stack: nothing "
            "polls /api/health/ping"
        ]
    }


def test_health_alert_with_pending_period_fires_after_3_failures() -> None:
    resources = rendered("staging")
    _rule(resources, "FlowchatHealthCheckFailing")["for"] = "30s"
    assert fired(resources) == {
        "health-alert": [
            "health alert FlowchatHealthCheckFailing in RuleGroup flowchat-monitoring: fires after "
            "3 consecutive failed probes (window 60s + for 30s + evaluation every 15s at 30s per "
            "probe), exceeding the runbook's bound 2"
        ]
    }


def _drop_rule(resources: list[RenderedResource], alert: str) -> None:
    group = find(resources, ":RuleGroup", MONITORING_RULES)
    group.inputs["rules"] = [r for r in group.inputs["rules"] if r["name"] != alert]


def test_missing_queue_alert_fires() -> None:
    resources = rendered("staging")
    _drop_rule(resources, "FlowchatQueueBacklog")
    assert fired(resources) == {
        "queue-depth-alert": [
            'no queue-depth alert on rq_jobs{queue="flow_tasks",status="queued"} in any RuleGroup'
        ]
    }


def test_queue_threshold_hidden_in_the_query_is_found() -> None:
    resources = rendered("staging")
    data = _rule(resources, "FlowchatQueueBacklog")["datas"][0]
    model = json.loads(data["model"])
    model["expr"] += " > 40"
    data["model"] = json.dumps(model)
    assert fired(resources) == {
        "queue-depth-alert": [
            "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: threshold 40 "
            "exceeds the runbook's bound 20"
        ]
    }


def test_no_volume_alert_fires() -> None:
    resources = rendered("staging")
    _drop_rule(resources, "FlowchatVectorStoreVolumeFilling")
    assert fired(resources) == {
        "chroma-volume-alert": [
            "no usage alert on kubelet_volume_stats_used_bytes / "
            "kubelet_volume_stats_capacity_bytes bound to the Chroma PVC data-flowchat-chroma-0"
        ]
    }


def test_volume_alert_on_another_claim_fires() -> None:
    resources = rendered("staging")
    for rule in find(resources, ":RuleGroup", MONITORING_RULES).inputs["rules"]:
        for data in rule["datas"]:
            data["model"] = data["model"].replace("data-flowchat-chroma-0", "data-flowchat-redis-0")
    assert fired(resources) == {
        "chroma-volume-alert": [
            "no usage alert on kubelet_volume_stats_used_bytes / "
            "kubelet_volume_stats_capacity_bytes bound to the Chroma PVC data-flowchat-chroma-0 "
            "(volume alerts watch: data-flowchat-redis-0)",
            "no fill-forecast alert (predict_linear on kubelet_volume_stats_used_bytes) bound to "
            "the Chroma PVC data-flowchat-chroma-0",
        ]
    }


def test_no_contact_point_fires_routing() -> None:
    resources = [r for r in rendered("staging") if not r.type.endswith(":ContactPoint")]
    messages = fired(resources)["alert-routing"]
    assert messages[0] == (
        "no ContactPoint in the stack: alerts of RuleGroup flowchat-monitoring, "
        "flowchat-troubleshooting reach nobody"
    )
    assert len(messages) == 1 + len(rules_of(resources))
    assert (
        "alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: routes to contact point "
        "flowchat-staging, which is not a ContactPoint of the stack (found: none)"
    ) in messages


def rules_of(resources: list[RenderedResource]) -> list[dict]:
    return [r for g in resources if g.type.endswith(":RuleGroup") for r in g.inputs["rules"]]


def test_rule_without_service_label_fires_routing() -> None:
    resources = rendered("staging")
    del _rule(resources, "FlowchatQueueBacklog")["labels"]["service"]
    assert fired(resources) == {
        "alert-routing": [
            "alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: label service=(unset), "
            "not flowchat"
        ]
    }


def test_literal_flow_secret_env_fires() -> None:
    resources = rendered("staging")
    worker = find(resources, ":Deployment", "flowchat-worker")
    env = worker.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    entry = next(e for e in env if e["name"] == "FLOW_AGENT_SECRET")
    entry.pop("valueFrom")
    entry["value"] = "s3cr3t"
    assert fired(resources) == {
        "flow-credentials-from-secret-manager": [
            "Deployment flowchat-worker: container worker env FLOW_AGENT_SECRET is a literal "
            "value; it must come from the secret manager (valueFrom.secretKeyRef to the "
            "ExternalSecret's Secret flowchat-flow-credentials)"
        ]
    }


def test_flow_credentials_in_a_config_map_fire() -> None:
    resources = rendered("staging")
    template = find(resources, ":Deployment", "flowchat-worker")
    resources.append(
        RenderedResource(
            type="kubernetes:core/v1:ConfigMap",
            name="flowchat-settings",
            inputs={"metadata": {"name": "flowchat-settings"}, "data": {"FLOW_TENANT": "acme"}},
            urn=template.urn.replace("apps/v1:Deployment::flowchat-worker", "core/v1:ConfigMap::x"),
            parent_urn=template.parent_urn,
        )
    )
    assert fired(resources) == {
        "flow-credentials-from-secret-manager": [
            "ConfigMap flowchat-settings: data holds FLOW_TENANT literally; Flow credentials and "
            "the admin token come only from the secret manager through the ExternalSecret"
        ]
    }


def test_redis_on_empty_dir_fires() -> None:
    resources = rendered("staging")
    redis = find(resources, ":StatefulSet", "flowchat-redis")
    del redis.inputs["spec"]["volumeClaimTemplates"]
    redis.inputs["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    assert fired(resources) == {
        "persistent-volumes": [
            "Redis StatefulSet flowchat-redis: volume data mounted at /data is an emptyDir; data "
            "must live on a volumeClaimTemplate",
            "Redis StatefulSet flowchat-redis: no volumeClaimTemplates (found none, need 1)",
        ]
    }


def test_container_baseline_is_advisory() -> None:
    resources = rendered("staging")
    redis = find(resources, ":StatefulSet", "flowchat-redis")
    redis.inputs["spec"]["template"]["spec"]["containers"][0]["image"] = "redis:latest"
    found = analyze(resources)
    assert mandatory(found) == []
    assert [(f.policy, f.level, f.message) for f in found] == [
        (
            "container-baseline",
            "advisory",
            "StatefulSet flowchat-redis: container redis image redis:latest is not pinned to a "
            "version tag",
        )
    ]


# --- policy config ------------------------------------------------------------------------------
def test_policy_config_tightens_bounds() -> None:
    found = fired(rendered("staging"), **{"queue-depth-alert": {"maxQueueDepth": 10}})
    assert found == {
        "queue-depth-alert": [
            "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: threshold 20 "
            "exceeds the runbook's bound 10"
        ]
    }


def test_enforcement_level_is_configurable_per_policy() -> None:
    resources = rendered("staging", **{"thresholds.queueDepth": "50"})
    found = analyze(resources, {"queue-depth-alert": {"enforcementLevel": "advisory"}})
    assert [(f.policy, f.level) for f in found] == [("queue-depth-alert", "advisory")]


def test_loosened_policy_config_cannot_let_a_weakened_threshold_pass() -> None:
    """Policy config may only tighten: a config looser than the runbook is clamped to it."""
    weakened = rendered("staging", **{"thresholds.queueDepth": "50"})
    found = fired(weakened, **{"queue-depth-alert": {"maxQueueDepth": 100, "maxFor": "1h"}})
    assert found == {
        "queue-depth-alert": [
            "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: threshold 50 "
            "exceeds the runbook's bound 20"
        ]
    }
    short = rendered("staging", **{"thresholds.volumeFillForecastHours": "6"})
    found = fired(short, **{"chroma-volume-alert": {"minForecastHours": 1, "maxUsageRatio": 0.99}})
    assert found == {
        "chroma-volume-alert": [
            "Chroma volume forecast alert FlowchatVectorStoreVolumeFullSoon in RuleGroup "
            "flowchat-monitoring: looks 6h ahead, less than the runbook's 24h"
        ]
    }


def test_config_schema_bounds_each_setting_by_the_runbook() -> None:
    """The schema the CLI validates `--policy-pack-config` against refuses a looser value."""
    import jsonschema

    built = {p.name: p for p in rules.policies()}
    queue = built["queue-depth-alert"].config_schema
    assert queue is not None
    schema = {"type": "object", "properties": queue.properties}
    jsonschema.validate({"maxQueueDepth": 10}, schema)
    with pytest.raises(jsonschema.ValidationError, match="maximum of 20"):
        jsonschema.validate({"maxQueueDepth": 100}, schema)
    volume = built["chroma-volume-alert"].config_schema
    assert volume is not None
    assert volume.properties["minForecastHours"]["minimum"] == 24
    assert volume.properties["maxUsageRatio"]["maximum"] == 0.8


def _set_evaluator(resources: list[RenderedResource], alert: str, kind: str, value: float) -> None:
    for data in _rule(resources, alert)["datas"]:
        model = json.loads(data["model"])
        if model.get("type") == "threshold":
            model["conditions"][0]["evaluator"] = {"type": kind, "params": [value]}
            data["model"] = json.dumps(model)


@pytest.mark.parametrize(("kind", "value", "shown"), [("gt", 5, "> 5"), ("lt", 0, "< 0")])
def test_health_alert_that_can_never_fire_fires(kind: str, value: float, shown: str) -> None:
    resources = rendered("staging")
    _set_evaluator(resources, "FlowchatHealthCheckFailing", kind, value)
    assert fired(resources) == {
        "health-alert": [
            "health alert FlowchatHealthCheckFailing in RuleGroup flowchat-monitoring: compares "
            f"with {shown}; a probe_success alert must fire below a threshold in (0, 1] "
            "(e.g. < 1), otherwise failed probes never fire it"
        ]
    }


def test_health_alert_evaluated_every_minute_fires_after_3_failures() -> None:
    resources = rendered("staging")
    find(resources, ":RuleGroup", MONITORING_RULES).inputs["intervalSeconds"] = 60
    assert fired(resources) == {
        "health-alert": [
            "health alert FlowchatHealthCheckFailing in RuleGroup flowchat-monitoring: fires after "
            "3 consecutive failed probes (window 60s + for 0s + evaluation every 60s at 30s per "
            "probe), exceeding the runbook's bound 2"
        ]
    }


def test_flow_secret_from_a_hand_made_secret_fires() -> None:
    resources = rendered("staging")
    api = find(resources, ":Deployment", "flowchat-api")
    env = api.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    entry = next(e for e in env if e["name"] == "ADMIN_TOKEN")
    entry["valueFrom"]["secretKeyRef"]["name"] = "my-secret"
    assert fired(resources) == {
        "flow-credentials-from-secret-manager": [
            "Deployment flowchat-api: container api env ADMIN_TOKEN is read from Secret my-secret; "
            "it must come from the ExternalSecret's Secret flowchat-flow-credentials (the secret "
            "manager), not from a Secret made by hand"
        ]
    }


def test_org_wide_notification_policy_fires_routing() -> None:
    resources = rendered("staging")
    policy = RenderedResource(
        type="grafana:alerting/notificationPolicy:NotificationPolicy",
        name="flowchat-notification-policy",
        inputs={"contactPoint": "flowchat-staging", "groupBies": ["alertname"]},
        urn="urn:pulumi:staging::flowchat::grafana:alerting/notificationPolicy:NotificationPolicy"
        "::flowchat-notification-policy",
    )
    assert fired([*resources, policy]) == {
        "alert-routing": [
            "NotificationPolicy flowchat-notification-policy: an org-wide notification policy "
            "replaces the whole Grafana org's routing tree (other teams' routes, and the other "
            "stack's on every deploy); route each rule to the stack's contact point with "
            "notificationSettings.contactPoint instead"
        ]
    }


def test_rule_without_its_own_routing_fires_routing() -> None:
    resources = rendered("staging")
    del _rule(resources, "FlowchatQueueBacklog")["notificationSettings"]
    assert fired(resources) == {
        "alert-routing": [
            "alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: no "
            "notificationSettings.contactPoint; each rule must route itself to the stack's "
            "contact point (flowchat-staging)"
        ]
    }


def test_rule_routed_to_another_contact_point_fires() -> None:
    resources = rendered("staging")
    _rule(resources, "FlowchatQueueBacklog")["notificationSettings"]["contactPoint"] = "ops-org"
    assert fired(resources) == {
        "alert-routing": [
            "alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: routes to contact "
            "point ops-org, which is not a ContactPoint of the stack (found: flowchat-staging)"
        ]
    }


def test_rule_with_another_stack_label_fires_routing() -> None:
    resources = rendered("staging")
    _rule(resources, "FlowchatQueueBacklog")["labels"]["stack"] = "prod"
    assert fired(resources) == {
        "alert-routing": [
            "alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: label stack=prod, not "
            "staging"
        ]
    }


def test_missing_or_misdirected_service_monitor_fires() -> None:
    expected = (
        "no ServiceMonitor selects Service flowchat-api (labels app.kubernetes.io/component=api, "
        "app.kubernetes.io/instance=staging, app.kubernetes.io/name=flowchat, "
        "app.kubernetes.io/part-of=flowchat) and scrapes /metrics on one of its ports "
        "(http, metrics); "
    )
    resources = [r for r in rendered("staging") if not r.type.endswith(":ServiceMonitor")]
    assert fired(resources) == {
        "metrics-scraped": [expected + "found: none. Nothing scrapes the metrics the alerts read"]
    }
    for mutate in ("port", "selector"):
        resources = rendered("staging")
        monitor = find(resources, ":ServiceMonitor", "flowchat-api-metrics")
        if mutate == "port":
            monitor.inputs["spec"]["endpoints"][0]["port"] = "not-a-port"
        else:
            monitor.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "x"
        assert fired(resources) == {
            "metrics-scraped": [
                expected + "found: flowchat-api. Nothing scrapes the metrics the alerts read"
            ]
        }, mutate


# --- issues 10-12: ingestion backlog, Redis memory, down-votes, API key source ------------------
def _drop_alert(resources: list[RenderedResource], alert: str) -> None:
    for group in resources:
        if group.type.endswith(":RuleGroup"):
            group.inputs["rules"] = [r for r in group.inputs["rules"] if r["name"] != alert]


@pytest.mark.parametrize(
    ("alert", "policy", "message"),
    [
        (
            "FlowchatIngestBacklog",
            "ingest-backlog-alert",
            'no ingestion-backlog alert on rq_jobs{queue="flow_ingest",status="queued"} in any '
            "RuleGroup: waiting uploads would go unnoticed",
        ),
        (
            "FlowchatRedisMemoryHigh",
            "redis-memory-alert",
            "no Redis memory alert on flowchat_redis_memory_used_bytes / "
            "flowchat_redis_memory_max_bytes in any RuleGroup",
        ),
        (
            "FlowchatDownVotes",
            "downvote-alert",
            'no down-vote alert on flowchat_feedback_total{vote="down"} in any RuleGroup',
        ),
        (
            "FlowchatFlowTokenBudget",
            "flow-token-budget-alert",
            "no daily token-budget alert on flowchat_flow_tokens_total in any RuleGroup",
        ),
    ],
)
def test_missing_new_alert_fires(alert: str, policy: str, message: str) -> None:
    resources = rendered("staging")
    _drop_alert(resources, alert)
    assert fired(resources) == {policy: [message]}


def test_backlog_alert_on_both_queues_fires() -> None:
    resources = rendered("staging")
    rule = _rule(resources, "FlowchatQueueBacklog")
    for data in rule["datas"]:
        model = json.loads(data["model"])
        if "expr" in model:
            model["expr"] = 'sum(rq_jobs{status="queued"})'
            data["model"] = json.dumps(model)
    found = fired(resources)
    assert found["ingest-backlog-alert"] == [
        "queued-jobs alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: selects no "
        'single queue (one of flow_tasks, flow_ingest with queue="..."): chat and upload '
        "backlogs are different incidents with different runbook sections"
    ]
    assert found["queue-depth-alert"] == [
        'no queue-depth alert on rq_jobs{queue="flow_tasks",status="queued"} in any RuleGroup'
    ]


def _api(resources: list[RenderedResource]) -> dict:
    return find(resources, ":Deployment", "flowchat-api").inputs["spec"]["template"]["spec"]


KEYLESS = (
    "Deployment flowchat-api is exposed by Ingress flowchat-api but has no API key "
    "source: set API_KEYS_FILE to a file in a mounted Secret volume (e.g. "
    "/var/run/secrets/flowchat/api-keys) or API_KEYS from a secretKeyRef"
)


def test_exposed_api_without_a_key_source_fires() -> None:
    resources = rendered("staging")
    api = _api(resources)["containers"][0]
    api["env"] = [e for e in api["env"] if e["name"] not in {"API_KEYS_FILE", "API_KEYS"}]
    assert fired(resources) == {"api-key-source": [KEYLESS]}


def test_key_file_outside_a_secret_volume_fires() -> None:
    resources = rendered("staging")
    spec = _api(resources)
    for volume in spec["volumes"]:
        if "secret" in volume:
            volume.pop("secret")
            volume["emptyDir"] = {}
    assert fired(resources) == {"api-key-source": [KEYLESS]}


def test_api_keys_from_a_secret_key_ref_pass() -> None:
    resources = rendered("staging")
    api = _api(resources)["containers"][0]
    api["env"] = [e for e in api["env"] if e["name"] not in {"API_KEYS_FILE", "API_KEYS"}]
    ref = {"secretKeyRef": {"name": "flowchat-flow-credentials", "key": "API_KEYS"}}
    api["env"].append({"name": "API_KEYS", "valueFrom": ref})
    assert fired(resources) == {}


def test_anonymous_chat_on_an_exposed_api_fires() -> None:
    resources = rendered("staging")
    _api(resources)["containers"][0]["env"].append(
        {"name": "ALLOW_ANONYMOUS_CHAT", "value": "True"}
    )
    assert fired(resources) == {
        "api-key-source": [
            "Deployment flowchat-api is exposed by Ingress flowchat-api and sets "
            "ALLOW_ANONYMOUS_CHAT=true: anyone on the internet could chat on the stack's Flow "
            "credentials"
        ]
    }


def test_an_api_no_ingress_exposes_needs_no_key_rule() -> None:
    resources = [r for r in rendered("staging") if not r.type.endswith(":Ingress")]
    api = _api(resources)["containers"][0]
    api["env"] = [e for e in api["env"] if e["name"] not in {"API_KEYS_FILE", "API_KEYS"}]
    assert "api-key-source" not in fired(resources)
