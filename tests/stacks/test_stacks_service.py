"""stacks/service.py (+ kube.py): the Kubernetes objects of both stacks on both clouds."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from stacks_testlib import COMBOS, Rendered, external_platform, render_components

from app.contracts import (
    API_DEPLOYMENT,
    API_KEYS_FILE_IN_POD,
    EXTERNAL_SECRET,
    INGEST_QUEUE_KEY,
    INGEST_WORKER_DEPLOYMENT,
    METRICS_PATH,
    PING_PATH,
    QUEUE_KEY,
    READY_PATH,
    SECRET_KEYS,
    WORKER_DEPLOYMENT,
    namespace_for,
)
from stacks.service import ROTATION_ANNOTATION, quantity_bytes, redis_maxmemory

API_REPLICAS = {"staging": 1, "prod": 3}
CHROMA_SIZE = {"staging": "5Gi", "prod": "50Gi"}


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
    for m in stack.manifests():
        assert m["metadata"].get("name"), m
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
    mounts = chroma["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mounts == [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}]


def _args(container: dict) -> dict[str, str]:
    """Redis's options: after the start script's $0 placeholder (`sh -c SCRIPT redis ARGS`)."""
    assert container["command"][:2] == ["sh", "-c"] and container["args"][0] == "redis"
    args = container["args"][1:]
    return dict(zip(args[::2], args[1::2], strict=True))


def test_redis_keeps_an_append_only_file_on_its_claim(stack: Rendered) -> None:
    redis = stack.manifest("StatefulSet", "flowchat-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = _args(container)
    # every write fsynced before Redis answers it: an acknowledged chat survives a crash
    assert args["--appendonly"] == "yes" and args["--appendfsync"] == "always"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert [c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]] == ["data"]


def test_documents_volume_is_shared_by_api_and_worker(stack: Rendered) -> None:
    pvc = stack.manifest("PersistentVolumeClaim", "flowchat-documents")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        spec = pod_spec(stack, "Deployment", name)
        (volume,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
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
    # one process per pod; its loops are the pod's capacity (32 chats in flight by default)
    assert container["command"] == [
        *("python", "-m", "app.worker", "--workers", "1", "--threads", "32")
    ]
    assert "replicas" not in worker["spec"]  # KEDA owns the count
    scaler = stack.manifest("ScaledObject", WORKER_DEPLOYMENT)
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    assert scaler["spec"]["scaleTargetRef"]["name"] == WORKER_DEPLOYMENT
    waiting, in_flight = scaler["spec"]["triggers"]
    assert waiting["type"] == "redis"
    assert waiting["metadata"]["listName"] == QUEUE_KEY == "rq:queue:flow_tasks"
    assert waiting["metadata"]["listLength"] == "16"  # half a pod's loops
    # the list is empty while every job runs: waiting + running keeps busy pods from scaling in
    assert in_flight["type"] == "prometheus"
    # every API replica exports the same gauge: one copy per status, then their sum
    namespace = f"flowchat-{stack.stack}"
    assert in_flight["metadata"]["query"] == (
        f'sum(max by (status) (rq_jobs{{namespace="{namespace}",queue="flow_tasks",'
        'status=~"queued|started"}))'
    )
    assert in_flight["metadata"]["threshold"] == "24"  # three quarters of a pod's loops
    assert scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]


def test_chat_workers_get_their_longest_job_to_finish_when_scaled_in(stack: Rendered) -> None:
    """KEDA may stop any pod, busy or not: SIGTERM is a warm shutdown (each loop finishes its
    chat), and the grace period covers the job timeout, or up to 32 chats would be cut off."""
    from app.core.settings import Settings

    spec = pod_spec(stack, "Deployment", WORKER_DEPLOYMENT)
    assert spec["terminationGracePeriodSeconds"] > Settings().JOB_TIMEOUT_SECONDS


def test_the_grace_period_follows_the_stacks_job_timeout() -> None:
    resources = render_components("staging", {"env": '{"JOB_TIMEOUT_SECONDS": "300"}'})
    spec = pod_spec(Rendered("staging", "azure", resources), "Deployment", WORKER_DEPLOYMENT)
    assert spec["terminationGracePeriodSeconds"] > 300


def test_queue_length_and_worker_bounds_come_from_config() -> None:
    resources = render_components(
        "staging",
        {
            "worker": '{"minReplicas": 3, "maxReplicas": 7, "threadsPerPod": 12,'
            ' "queueLengthPerReplica": 5}'
        },
    )
    rendered = Rendered("staging", "azure", resources)
    scaler = rendered.manifest("ScaledObject", WORKER_DEPLOYMENT)
    assert scaler["spec"]["minReplicaCount"] == 3
    assert scaler["spec"]["maxReplicaCount"] == 7
    waiting, in_flight = scaler["spec"]["triggers"]
    assert waiting["metadata"]["listLength"] == "5"
    assert in_flight["metadata"]["threshold"] == "9"  # derived: 3/4 of 12 loops
    (container,) = pod_spec(rendered, "Deployment", WORKER_DEPLOYMENT)["containers"]
    assert container["command"][-2:] == ["--threads", "12"]


def test_containers_are_pinned_non_root_and_bounded(stack: Rendered) -> None:
    containers = all_containers(stack)
    assert len(containers) == 5
    for owner, c in containers:
        # read-only root; whatever the process writes goes to a volume (/tmp is an emptyDir)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, owner
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], owner
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


def _peers(rules: list[dict]) -> set[tuple[str, int]]:
    """(peer, port) pairs a NetworkPolicy rule list admits, peers as readable names."""
    found = set()
    for rule in rules:
        ports = [p["port"] for p in rule["ports"]]
        for peer in rule.get("from", rule.get("to", [])):
            if "podSelector" in peer:
                selector = peer["podSelector"]
                assert selector["matchLabels"]["app.kubernetes.io/name"] == "flowchat"
                names = selector["matchExpressions"][0]["values"]
            elif "namespaceSelector" in peer:
                labels = peer["namespaceSelector"].get("matchLabels", {})  # {}: every namespace
                names = ["ns:" + labels.get("kubernetes.io/metadata.name", "*")]
            else:
                names = ["ip:" + peer["ipBlock"]["cidr"]]
            found |= {(n, port) for n in names for port in ports}
    return found


KEDA_NS = {"staging": "keda", "prod": "keda"}  # the platform's KEDA release
INGRESS_NS = {"staging": "app-routing-system", "prod": "ingress-nginx"}
DNS = {("ns:kube-system", 53)}
APPS = ("api", "worker", "ingest-worker")


def test_network_policies_admit_exactly_the_listed_peers(rendered: dict) -> None:
    """Ingress and egress for every workload (issue 10): the committed stack files' add-on
    namespaces (AKS's KEDA add-on in kube-system) reach Redis, nothing else does."""
    for stack_name in ("staging", "prod"):
        stack = rendered[(stack_name, "azure")]
        keda, ingress = KEDA_NS[stack_name], INGRESS_NS[stack_name]
        expected = {
            API_DEPLOYMENT: (
                {(f"ns:{ingress}", 8000), ("ns:monitoring", 8000), ("ns:monitoring", 9464)},
                DNS | {("redis", 6379), ("chroma", 8000), ("ip:0.0.0.0/0", 443)},
            ),
            WORKER_DEPLOYMENT: (
                set(),
                DNS | {("redis", 6379), ("chroma", 8000), ("ip:0.0.0.0/0", 443)},
            ),
            INGEST_WORKER_DEPLOYMENT: (set(), DNS | {("redis", 6379), ("chroma", 8000)}),
            "flowchat-redis": ({*((a, 6379) for a in APPS), (f"ns:{keda}", 6379)}, set()),
            "flowchat-chroma": ({(a, 8000) for a in APPS}, set()),
        }
        policies = [m for m in stack.manifests() if m["kind"] == "NetworkPolicy"]
        assert {p["metadata"]["name"] for p in policies} == set(expected)
        for name, (ingress_peers, egress_peers) in expected.items():
            spec = stack.manifest("NetworkPolicy", name)["spec"]
            assert spec["policyTypes"] == ["Ingress", "Egress"], name
            assert _peers(spec["ingress"]) == ingress_peers, name
            assert _peers(spec["egress"]) == egress_peers, name
        # every workload is selected by exactly one policy
        selected = {
            p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in policies
        }
        assert selected == {"api", "worker", "ingest-worker", "redis", "chroma"}


def test_addons_namespaces_come_from_the_platform() -> None:
    platform = external_platform("staging", kedaNamespace="keda-system", ingressNamespace="traefik")
    resources = render_components("staging", {"platform": json.dumps({"external": platform})})
    stack = Rendered("staging", "azure", resources)
    redis = stack.manifest("NetworkPolicy", "flowchat-redis")["spec"]
    assert ("ns:keda-system", 6379) in _peers(redis["ingress"])
    api = stack.manifest("NetworkPolicy", API_DEPLOYMENT)["spec"]
    assert ("ns:traefik", 8000) in _peers(api["ingress"])
    monitor = stack.manifest("ServiceMonitor", API_DEPLOYMENT)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_metrics_are_scraped_on_their_own_port_that_the_ingress_does_not_route(
    stack: Rendered,
) -> None:
    monitor = stack.manifest("ServiceMonitor", API_DEPLOYMENT)["spec"]
    (endpoint,) = monitor["endpoints"]
    service = stack.manifest("Service", API_DEPLOYMENT)["spec"]
    ports = {p["name"]: p for p in service["ports"]}
    assert ports[endpoint["port"]]["port"] == 9464 != ports["http"]["port"]
    api = stack.manifest("Deployment", API_DEPLOYMENT)["spec"]["template"]["spec"]
    (container,) = [c for c in api["containers"] if c["name"] == "api"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["METRICS_PORT"] == "9464"
    assert {"name": "metrics", "containerPort": 9464} in container["ports"]
    ingress = stack.manifest("Ingress", API_DEPLOYMENT)["spec"]
    backends = {
        p["backend"]["service"]["port"]["number"]
        for r in ingress["rules"]
        for p in r["http"]["paths"]
    }
    assert backends == {8000}


def test_ingress_pdb_and_rotation_annotation(stack: Rendered) -> None:
    ingress = stack.manifest("Ingress", API_DEPLOYMENT)["spec"]
    (rule,) = ingress["rules"]
    platform = external_platform(stack.stack)
    assert rule["host"] == platform["hostname"] and "example." not in rule["host"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    # never /metrics, /docs, /openapi.json (Prometheus scrapes the Service), nor /api/health/*
    assert paths == {
        ("/api/chat", "Prefix"),
        ("/api/documents", "Prefix"),
        ("/api/status", "Exact"),
        ("/v1", "Prefix"),
        ("/", "Exact"),
        ("/static", "Prefix"),
    }
    assert not any("/api/health".startswith(p) and p != "/" for p, _ in paths)
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": API_DEPLOYMENT, "port": {"number": 8000}}
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


# --- issue 10: keys, Redis password and memory, app env ---------------------------------------
def test_api_reads_keys_from_a_mounted_file_of_the_synced_secret(stack: Rendered) -> None:
    spec = pod_spec(stack, "Deployment", API_DEPLOYMENT)
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["API_KEYS_FILE"]["value"] == API_KEYS_FILE_IN_POD
    assert "API_KEYS" not in env and "ALLOW_ANONYMOUS_CHAT" not in env
    directory, _, filename = API_KEYS_FILE_IN_POD.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "subPath" not in mount  # a subPath mount would never see a revoked key
    assert volume["secret"]["secretName"] == EXTERNAL_SECRET
    assert volume["secret"]["items"] == [{"key": "API_KEYS", "path": filename}]


def test_every_redis_client_and_the_server_use_the_password(stack: Rendered) -> None:
    password_ref = {"secretKeyRef": {"name": EXTERNAL_SECRET, "key": "REDIS_PASSWORD"}}
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        (container,) = pod_spec(stack, "Deployment", name)["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["REDIS_PASSWORD"]["valueFrom"] == password_ref, name
    redis = stack.manifest("StatefulSet", "flowchat-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" not in _args(container)  # issue 19 item 11: never in argv
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"] == password_ref
    assert env["REDISCLI_AUTH"]["valueFrom"] == password_ref  # the redis-cli readiness probe
    auth = stack.manifest("TriggerAuthentication", "flowchat-redis-auth")["spec"]
    assert auth["secretTargetRef"] == [
        {"parameter": "password", "name": EXTERNAL_SECRET, "key": "REDIS_PASSWORD"}
    ]
    for scaler in (m for m in stack.manifests() if m["kind"] == "ScaledObject"):
        for trigger in scaler["spec"]["triggers"]:
            if trigger["type"] == "redis":
                assert trigger["authenticationRef"] == {"name": "flowchat-redis-auth"}


def test_redis_maxmemory_is_derived_from_its_limit_and_never_evicts(stack: Rendered) -> None:
    redis = stack.manifest("StatefulSet", "flowchat-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = _args(container)
    limit = quantity_bytes(container["resources"]["limits"]["memory"])
    assert int(args["--maxmemory"]) == redis_maxmemory(container["resources"]["limits"]["memory"])
    assert 0.7 * limit <= int(args["--maxmemory"]) <= 0.8 * limit
    assert args["--maxmemory-policy"] == "noeviction"


def test_redis_memory_follows_a_new_limit() -> None:
    resources = render_components("staging", {"redis": '{"resources": {"memoryLimit": "2Gi"}}'})
    redis = Rendered("staging", "azure", resources).manifest("StatefulSet", "flowchat-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert int(_args(container)["--maxmemory"]) == int(2 * 2**30 * 0.75)


@pytest.mark.parametrize(
    ("quantity", "expected"), [("512Mi", 512 * 2**20), ("1G", 10**9), ("3", 3)]
)
def test_quantity_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_stack_env_reaches_the_app_containers() -> None:
    resources = render_components("staging", {"env": '{"CHUNK_SIZE": "600", "TOP_K": "8"}'})
    stack = Rendered("staging", "azure", resources)
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        (container,) = pod_spec(stack, "Deployment", name)["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["CHUNK_SIZE"], env["TOP_K"]) == ("600", "8"), name


def test_otlp_endpoint_sets_the_env_and_opens_egress_to_the_collector_port_only_when_set(
    rendered: dict,
) -> None:
    """Issue 14: flowchat:otlpEndpoint points every app pod at the collector and opens exactly
    its port; unset (the committed stacks), no pod gets the variable or the egress."""
    collector = "http://otel-collector.monitoring.svc:4318"
    on = Rendered("staging", "azure", render_components("staging", {"otlpEndpoint": collector}))
    off = rendered[("staging", "azure")]
    collector_peers = {("ns:*", 4318), ("ip:0.0.0.0/0", 4318)}
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        for stack, endpoint in ((on, collector), (off, None)):
            (container,) = pod_spec(stack, "Deployment", name)["containers"]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == endpoint, name
        egress_on = _peers(on.manifest("NetworkPolicy", name)["spec"]["egress"])
        egress_off = _peers(off.manifest("NetworkPolicy", name)["spec"]["egress"])
        assert egress_on - egress_off == collector_peers, name
        assert not any(port == 4318 for _peer, port in egress_off), name
    for name in ("flowchat-redis", "flowchat-chroma"):  # the stores export nothing
        egress = on.manifest("NetworkPolicy", name)["spec"]["egress"]
        assert egress == [], name


# --- issue 9 hardening and issue 11: worker probes, budgets, ingest workers ----------------------
def test_workers_have_probes_from_their_alive_keys(stack: Rendered) -> None:
    for name, queue in (
        (WORKER_DEPLOYMENT, "flow_tasks"),
        (INGEST_WORKER_DEPLOYMENT, "flow_ingest"),
    ):
        (container,) = pod_spec(stack, "Deployment", name)["containers"]
        for probe in ("livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command == ["python", "-m", "app.worker.probe", "--queue", queue], name


def test_disruption_budgets_for_every_workload(stack: Rendered) -> None:
    budgets = {
        m["metadata"]["name"]: m["spec"]
        for m in stack.manifests()
        if m["kind"] == "PodDisruptionBudget"
    }
    assert set(budgets) == {
        API_DEPLOYMENT,
        WORKER_DEPLOYMENT,
        INGEST_WORKER_DEPLOYMENT,
    }
    for name, spec in budgets.items():
        labels = stack.manifest("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name


def test_the_service_creates_no_namespace(stack: Rendered) -> None:
    """The platform creates it (platform_stack.namespaces, restricted Pod Security there)."""
    assert not [m for m in stack.manifests() if m["kind"] == "Namespace"]


def test_ingest_workers_drain_and_scale_on_waiting_and_running_jobs(stack: Rendered) -> None:
    deployment = stack.manifest("Deployment", INGEST_WORKER_DEPLOYMENT)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "app.ingest.worker", "--workers", "1"]
    assert spec["terminationGracePeriodSeconds"] >= 600  # an OCR job finishes after SIGTERM
    chat = pod_spec(stack, "Deployment", WORKER_DEPLOYMENT)["containers"][0]
    # chat workers: flow_tasks only (app.worker serves no other queue)
    assert chat["command"][:3] == ["python", "-m", "app.worker"]
    assert not any("ingest" in part for part in chat["command"])
    scaler = stack.manifest("ScaledObject", INGEST_WORKER_DEPLOYMENT)["spec"]
    redis_trigger, prom = scaler["triggers"]
    assert redis_trigger["metadata"]["listName"] == INGEST_QUEUE_KEY
    assert 'queue="flow_ingest"' in prom["metadata"]["query"]
    assert "started" in prom["metadata"]["query"]  # running jobs keep their replicas
    window = scaler["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert window["stabilizationWindowSeconds"] >= 600


def test_chroma_requires_the_token_every_app_pod_sends(stack: Rendered) -> None:
    """chromadb's Python server (the 1.x image's Rust server has no token authentication),
    its credentials from the stack's Secret; API, chat and ingestion workers get CHROMA_TOKEN."""
    from app.contracts import CHROMA_SERVER_APP, CHROMA_SERVER_ENV, CHROMA_TOKEN_SECRET

    token_ref = {"secretKeyRef": {"name": EXTERNAL_SECRET, "key": CHROMA_TOKEN_SECRET}}
    (chroma,) = pod_spec(stack, "StatefulSet", "flowchat-chroma")["containers"]
    assert chroma["command"][-2:] == ["uvicorn", CHROMA_SERVER_APP]
    env = {e["name"]: e for e in chroma["env"]}
    provider = env["CHROMA_SERVER_AUTHN_PROVIDER"]["value"]
    assert provider.endswith("TokenAuthenticationServerProvider")
    assert env["CHROMA_SERVER_AUTHN_CREDENTIALS"] == {
        "name": "CHROMA_SERVER_AUTHN_CREDENTIALS",
        "valueFrom": token_ref,
    }
    assert env["PERSIST_DIRECTORY"]["value"] == "/data"
    assert {n: env[n].get("value") for n in CHROMA_SERVER_ENV} == CHROMA_SERVER_ENV
    api = stack.manifest("Deployment", API_DEPLOYMENT)["spec"]["template"]["spec"]
    assert chroma["image"] == api["containers"][0]["image"]  # the service image carries chromadb
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        (container,) = pod_spec(stack, "Deployment", name)["containers"]
        app_env = {e["name"]: e for e in container["env"]}
        assert app_env["CHROMA_TOKEN"] == {"name": "CHROMA_TOKEN", "valueFrom": token_ref}


# --- issue 19, items 7-11: what the cluster needs, each failing before its fix -----------------
def test_single_replica_stores_never_block_a_node_drain(stack: Rendered) -> None:
    """A PDB admitting no eviction of a one-replica StatefulSet blocks every drain (item 11)."""
    for budget in (m for m in stack.manifests() if m["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        for owner in (m for m in stack.manifests() if m["kind"] in {"StatefulSet", "Deployment"}):
            labels = owner["spec"]["template"]["metadata"]["labels"]
            if not selector.items() <= labels.items():
                continue
            replicas = owner["spec"].get("replicas")
            if replicas == 1 or owner["kind"] == "StatefulSet":
                spec = budget["spec"]
                assert spec.get("maxUnavailable", 0) >= 1 or spec.get("minAvailable", 1) == 0, (
                    budget["metadata"]["name"]
                )


def test_storage_and_ingress_classes_are_the_platform_outputs(stack: Rendered) -> None:
    """Prod's gp3/efs-sc and staging's app-routing class come from the platform (items 8-9)."""
    platform = external_platform(stack.stack)
    pvc = stack.manifest("PersistentVolumeClaim", "flowchat-documents")
    assert pvc["spec"]["storageClassName"] == platform["sharedStorageClass"]
    for name in ("flowchat-redis", "flowchat-chroma"):
        (claim,) = stack.manifest("StatefulSet", name)["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["storageClassName"] == platform["storageClass"], name
    ingress = stack.manifest("Ingress", API_DEPLOYMENT)
    assert ingress["spec"]["ingressClassName"] == platform["ingressClass"]
    if stack.stack == "staging":
        assert platform["ingressClass"] == "webapprouting.kubernetes.azure.com"
    else:
        assert (platform["storageClass"], platform["sharedStorageClass"]) == ("gp3", "efs-sc")


def test_tls_comes_from_the_platform_issuer_for_the_platform_hostname(stack: Rendered) -> None:
    """Every stack (staging too) gets a certificate `ops.smoke` accepts (item 10)."""
    platform = external_platform(stack.stack)
    ingress = stack.manifest("Ingress", API_DEPLOYMENT)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == platform["clusterIssuer"]
    assert ingress["spec"]["tls"] == [
        {"hosts": [platform["hostname"]], "secretName": "flowchat-tls"}
    ]


def test_app_pods_pull_with_the_registry_secret(stack: Rendered) -> None:
    """A private GHCR package needs pull credentials (item 7)."""
    secret = stack.manifest("Secret", "flowchat-registry")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT):
        spec = pod_spec(stack, "Deployment", name)
        assert spec["imagePullSecrets"] == [{"name": "flowchat-registry"}], name
    # Chroma runs the service image too (chromadb's Python server, for its token)
    chroma = pod_spec(stack, "StatefulSet", "flowchat-chroma")
    assert chroma["imagePullSecrets"] == [{"name": "flowchat-registry"}]


def test_docker_config_names_the_image_registry() -> None:
    from stacks.registry import DOCKER_HUB, docker_config

    config = json.loads(docker_config("ghcr.io/acme/chat", "bot:tok"))
    assert list(config["auths"]) == ["ghcr.io"]
    assert config["auths"]["ghcr.io"]["auth"] == "Ym90OnRvaw=="  # base64 of bot:tok
    assert list(json.loads(docker_config("acme/chat", "u:p"))["auths"]) == [DOCKER_HUB]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs Debian's redis-server")
def test_redis_start_script_keeps_the_password_out_of_argv(tmp_path: Path) -> None:
    """The committed start script against a real redis-server: it requires the password, the
    probe's REDISCLI_AUTH works, and no process's argv holds the password (item 11)."""
    from stacks.stores import REDIS_START

    password = "pw-" + os.urandom(8).hex()
    port = _free_port()
    env = {**os.environ, "REDIS_PASSWORD": password, "TMPDIR": str(tmp_path)}
    args = ["redis", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    server = subprocess.Popen(["sh", "-c", REDIS_START, *args], env=env)
    try:
        deadline = time.monotonic() + 60
        ping = ["redis-cli", "-p", str(port), "ping"]
        authed = {**os.environ, "REDISCLI_AUTH": password}
        while True:
            out = subprocess.run(ping, env=authed, capture_output=True, text=True)
            if out.stdout.strip() == "PONG":
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        anonymous = subprocess.run(ping, capture_output=True, text=True)
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline  # sh exec'd redis-server: same pid
        assert b"redis-server" in cmdline
        conf = tmp_path / "redis-auth.conf"
        assert oct(conf.stat().st_mode & 0o777) == "0o600"
    finally:
        server.terminate()
        server.wait(timeout=60)
