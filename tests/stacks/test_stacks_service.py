"""stacks/service.py (+ kube.py): the Kubernetes objects of both stacks on both clouds."""

from __future__ import annotations

import pytest
from stacks_testlib import COMBOS, Rendered, render_components

from app.contracts import (
    API_DEPLOYMENT,
    EXTERNAL_SECRET,
    METRICS_PATH,
    PING_PATH,
    QUEUE_KEY,
    READY_PATH,
    SECRET_KEYS,
    WORKER_DEPLOYMENT,
    namespace_for,
)
from stacks.service import ROTATION_ANNOTATION

API_REPLICAS = {"staging": 1, "prod": 3}
CHROMA_SIZE = {"staging": "5Gi", "prod": "50Gi"}
QUEUE_LENGTH = {"staging": "5", "prod": "4"}


@pytest.fixture(params=COMBOS, ids=[f"{s}-{c}" for s, c in COMBOS])
def stack(request: pytest.FixtureRequest, rendered: dict) -> Rendered:
    return rendered[request.param]


def pod_spec(stack: Rendered, kind: str, name: str) -> dict:
    return stack.manifest(kind, name)["spec"]["template"]["spec"]


def all_containers(stack: Rendered) -> list[tuple[str, dict]]:
    out = []
    for m in stack.manifests():
        if m["kind"] in {"Deployment", "StatefulSet"}:
            out += [(m["metadata"]["name"], c) for c in m["spec"]["template"]["spec"]["containers"]]
    return out


def test_every_object_is_named_in_the_stack_namespace(stack: Rendered) -> None:
    ns = namespace_for(stack.stack)
    assert stack.manifest("Namespace", ns)
    for m in stack.manifests():
        assert m["metadata"].get("name"), m
        if m["kind"] != "Namespace":
            assert m["metadata"]["namespace"] == ns, m["metadata"]


def test_api_probes_follow_the_runbook_thresholds(stack: Rendered) -> None:
    (api,) = pod_spec(stack, "Deployment", API_DEPLOYMENT)["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == PING_PATH
    assert api["livenessProbe"]["periodSeconds"] == 30
    assert api["livenessProbe"]["failureThreshold"] == 2
    assert api["readinessProbe"]["httpGet"]["path"] == READY_PATH


def test_tightened_thresholds_reach_the_liveness_probe() -> None:
    resources = render_components(
        "staging",
        {"thresholds.healthProbeIntervalSeconds": "15", "thresholds.healthProbeFailures": "3"},
    )
    probe = Rendered("staging", "azure", resources).manifest("Deployment", API_DEPLOYMENT)
    liveness = probe["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert (liveness["periodSeconds"], liveness["failureThreshold"]) == (15, 3)


def test_replicas_and_volume_sizes_differ_per_stack(stack: Rendered) -> None:
    api = stack.manifest("Deployment", API_DEPLOYMENT)
    assert api["spec"]["replicas"] == API_REPLICAS[stack.stack]
    chroma = stack.manifest("StatefulSet", "flowchat-chroma")
    (claim,) = chroma["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"  # PVC data-flowchat-chroma-0
    assert claim["spec"]["resources"]["requests"]["storage"] == CHROMA_SIZE[stack.stack]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (mount,) = chroma["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mount == {"name": "data", "mountPath": "/data"}


def test_redis_keeps_an_append_only_file_on_its_claim(stack: Rendered) -> None:
    redis = stack.manifest("StatefulSet", "flowchat-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["--appendonly", "yes"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert [c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]] == ["data"]


def test_documents_volume_is_shared_by_api_and_worker(stack: Rendered) -> None:
    pvc = stack.manifest("PersistentVolumeClaim", "flowchat-documents")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT):
        spec = pod_spec(stack, "Deployment", name)
        (volume,) = spec["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == "flowchat-documents"
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[volume["name"]] == env["DOCUMENTS_PATH"]


def test_service_selectors_match_pod_labels(stack: Rendered) -> None:
    services = [m for m in stack.manifests() if m["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {
        API_DEPLOYMENT,
        "flowchat-redis",
        "flowchat-chroma",
    }
    pods = {
        m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"]
        for m in stack.manifests()
        if m["kind"] in {"Deployment", "StatefulSet"}
    }
    for service in services:
        selector = service["spec"]["selector"]
        matching = [n for n, labels in pods.items() if selector.items() <= labels.items()]
        assert matching == [service["metadata"]["name"]], (service["metadata"]["name"], matching)
    for m in stack.manifests():
        if m["kind"] in {"Deployment", "StatefulSet"}:
            selector = m["spec"]["selector"]["matchLabels"]
            assert selector.items() <= m["spec"]["template"]["metadata"]["labels"].items()
            assert selector["app.kubernetes.io/instance"] == stack.stack


def test_secrets_reach_pods_only_through_secret_key_refs(stack: Rendered) -> None:
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT):
        (container,) = pod_spec(stack, "Deployment", name)["containers"]
        env = {e["name"]: e for e in container["env"]}
        for key in SECRET_KEYS:
            assert "value" not in env[key]
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": EXTERNAL_SECRET, "key": key}
        assert "envFrom" not in container
        assert env["CHROMA_URL"]["value"].startswith("http://flowchat-chroma.")
        assert env["REDIS_URL"]["value"].startswith("redis://flowchat-redis.")
        assert env["RQ_QUEUE"]["value"] == "flow_tasks"


def test_worker_scales_on_the_rq_queue(stack: Rendered) -> None:
    worker = stack.manifest("Deployment", WORKER_DEPLOYMENT)
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "app.worker"]
    assert "replicas" not in worker["spec"]  # KEDA owns the count
    scaler = stack.manifest("ScaledObject", WORKER_DEPLOYMENT)
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    assert scaler["spec"]["scaleTargetRef"]["name"] == WORKER_DEPLOYMENT
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE_KEY == "rq:queue:flow_tasks"
    assert trigger["metadata"]["listLength"] == QUEUE_LENGTH[stack.stack]
    assert scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]


def test_queue_length_and_worker_bounds_come_from_config() -> None:
    resources = render_components(
        "staging", {"worker": '{"minReplicas": 3, "maxReplicas": 7, "queueLengthPerReplica": 9}'}
    )
    scaler = Rendered("staging", "azure", resources).manifest("ScaledObject", WORKER_DEPLOYMENT)
    assert scaler["spec"]["minReplicaCount"] == 3
    assert scaler["spec"]["maxReplicaCount"] == 7
    assert scaler["spec"]["triggers"][0]["metadata"]["listLength"] == "9"


def test_containers_are_pinned_non_root_and_bounded(stack: Rendered) -> None:
    containers = all_containers(stack)
    assert len(containers) == 4
    for owner, c in containers:
        tag = c["image"].rsplit(":", 1)[-1]
        assert ":" in c["image"] and tag != "latest", (owner, c["image"])
        assert set(c["resources"]) == {"requests", "limits"}, owner
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), owner
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, owner
    for m in stack.manifests():
        if m["kind"] in {"Deployment", "StatefulSet"}:
            security = m["spec"]["template"]["spec"]["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["runAsUser"] > 0


def test_network_policies_admit_only_api_and_worker_to_redis_and_chroma(stack: Rendered) -> None:
    for name, port in (("flowchat-redis", 6379), ("flowchat-chroma", 8000)):
        policy = stack.manifest("NetworkPolicy", name)["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name[9:]
        (rule,) = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        pods = [p["podSelector"] for p in rule["from"] if "podSelector" in p]
        (expr,) = pods[0]["matchExpressions"]
        assert expr["values"] == ["api", "worker"]
        namespaces = [p for p in rule["from"] if "namespaceSelector" in p]
        assert len(namespaces) == (1 if name == "flowchat-redis" else 0)  # KEDA reads the queue
    api = stack.manifest("NetworkPolicy", API_DEPLOYMENT)["spec"]
    assert api["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]


def test_ingress_pdb_and_rotation_annotation(stack: Rendered) -> None:
    ingress = stack.manifest("Ingress", API_DEPLOYMENT)["spec"]
    (rule,) = ingress["rules"]
    assert rule["host"].endswith("flowchat.example.com")
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": API_DEPLOYMENT, "port": {"number": 8000}}
    pdb = stack.manifest("PodDisruptionBudget", API_DEPLOYMENT)["spec"]
    assert pdb["maxUnavailable"] == 1
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT):
        template = stack.manifest("Deployment", name)["spec"]["template"]
        assert template["metadata"]["annotations"][ROTATION_ANNOTATION] == "0"


def test_rotation_annotation_follows_config() -> None:
    resources = render_components("prod", {"credentialsVersion": "2026-11-29T10:00:00Z"})
    api = Rendered("prod", "aws", resources).manifest("Deployment", API_DEPLOYMENT)
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations[ROTATION_ANNOTATION] == "2026-11-29T10:00:00Z"


def test_kubeconfig_makes_an_explicit_secret_provider() -> None:
    resources = render_components("staging", {"kubeconfig": "apiVersion: v1\nkind: Config\n"})
    (provider,) = [r for r in resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["kubeconfig"] == "[secret]"


def test_service_monitor_scrapes_the_api_service_metrics(stack: Rendered) -> None:
    monitor = stack.manifest("ServiceMonitor", API_DEPLOYMENT)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == namespace_for(stack.stack)
    service = stack.manifest("Service", API_DEPLOYMENT)
    spec = monitor["spec"]
    # the selector picks exactly the API Service (by its labels), in the stack's namespace
    wanted = spec["selector"]["matchLabels"]
    assert wanted and wanted.items() <= service["metadata"]["labels"].items()
    others = [
        m
        for m in stack.manifests()
        if m["kind"] == "Service" and m["metadata"]["name"] != API_DEPLOYMENT
    ]
    assert others and not any(wanted.items() <= m["metadata"]["labels"].items() for m in others)
    assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = spec["endpoints"]
    port_names = [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["port"] in port_names
    # the named port reaches the API container's port
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    (api,) = pod_spec(stack, "Deployment", API_DEPLOYMENT)["containers"]
    assert port["targetPort"] in [p["name"] for p in api["ports"]]
    assert endpoint["path"] == METRICS_PATH
    assert endpoint["interval"] == "30s"
