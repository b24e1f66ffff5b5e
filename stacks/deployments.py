"""The flowchat image's Deployments: the API and the two queue workers, one pod template each.

Every Deployment is built by `app_deployment` from `stacks.pods.app_pod_template`; the chat worker
and the ingest worker differ only in the `QueueWorker` row that describes them (command, queue,
sizes, KEDA targets). Restarts by `ops.rotate_credentials` (the `restartedAt` annotation) are
ignored by Pulumi; `flowchat.io/credentials-version` rolls the pods through config.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_kubernetes as k8s

from app.contracts import (
    API_DEPLOYMENT,
    API_KEYS_FILE_IN_POD,
    API_KEYS_SECRET,
    CHROMA_TOKEN_SECRET,
    DEFAULT_PORT,
    INGEST_QUEUE_KEY,
    INGEST_QUEUE_NAME,
    INGEST_WORKER_DEPLOYMENT,
    KEY_ID_SECRET_KEY,
    METRICS_PATH,
    METRICS_PORT,
    PING_PATH,
    QUEUE_KEY,
    QUEUE_NAME,
    READY_PATH,
    REDIS_PASSWORD_SECRET,
    SECRET_KEYS,
    WORKER_DEPLOYMENT,
)
from stacks.autoscaling import in_flight_trigger, redis_trigger, scaled_object
from stacks.config import Resources
from stacks.kube import Component, selector_labels
from stacks.pods import (
    DOCUMENTS_MOUNT,
    METRICS_PORT_NAME,
    Manifest,
    ServiceScope,
    VolumeAndMount,
    app_pod_template,
    secret_env,
)
from stacks.stores import chroma_url, redis_url

API_KEYS_VOLUME = "api-keys"


def app_env(scope: ServiceScope) -> list[Manifest]:
    """Environment of every app container: service URLs, Flow, config `env`, secrets."""
    config = scope.config
    plain = {
        "REDIS_URL": redis_url(config.namespace),
        "CHROMA_URL": chroma_url(config.namespace),
        "RQ_QUEUE": QUEUE_NAME,
        "FLOW_BASE_URL": config.flow.base_url,
        "FLOW_APP_TO_ACCESS": config.flow.app_to_access,
        "FLOW_MODEL": config.flow.model,
        "DOCUMENTS_PATH": DOCUMENTS_MOUNT,
        "MAX_QUEUE_DEPTH": str(config.api.max_queue_depth),
    }
    if config.otlp_endpoint:  # traces to the stack's collector (app.observability.tracing)
        plain["OTEL_EXPORTER_OTLP_ENDPOINT"] = config.otlp_endpoint
    plain.update(config.env)  # validated against app.core.settings.Settings (stacks.config)
    env: list[Manifest] = [{"name": k, "value": v} for k, v in plain.items()]
    env += [secret_env(key, scope.secret_name, key) for key in SECRET_KEYS]
    env.append(secret_env("REDIS_PASSWORD", scope.secret_name, REDIS_PASSWORD_SECRET))
    env.append(secret_env("KEY_ID_SECRET", scope.secret_name, KEY_ID_SECRET_KEY))
    env.append(secret_env("CHROMA_TOKEN", scope.secret_name, CHROMA_TOKEN_SECRET))
    return env


def app_deployment(
    scope: ServiceScope,
    name: str,
    component: Component,
    template: Manifest,
    documents: k8s.core.v1.PersistentVolumeClaim,
    replicas: int | None = None,
) -> k8s.apps.v1.Deployment:
    """A Deployment of the app image; `replicas` None leaves the count to KEDA."""
    spec: Manifest = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": selector_labels(scope.config.stack, component)}
    spec["template"] = template
    return k8s.apps.v1.Deployment(
        f"{scope.name}-{component}",
        metadata=scope.meta(name, component),
        spec=spec,
        opts=scope.restartable_opts(documents, *scope.waits),
    )


def _api_keys_volume(scope: ServiceScope) -> VolumeAndMount:
    directory, _, filename = API_KEYS_FILE_IN_POD.rpartition("/")
    volume = {
        "name": API_KEYS_VOLUME,
        "secret": {
            "secretName": scope.secret_name,
            "items": [{"key": API_KEYS_SECRET, "path": filename}],
            "defaultMode": 0o440,
        },
    }
    return volume, {"name": API_KEYS_VOLUME, "mountPath": directory, "readOnly": True}


def api(
    scope: ServiceScope, env: list[Manifest], documents: k8s.core.v1.PersistentVolumeClaim
) -> None:
    config = scope.config
    thresholds = config.thresholds
    container = {
        "name": "api",
        "image": config.image.ref,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": DEFAULT_PORT},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT},
        ],
        # the API re-reads the key file at request time; a Secret volume (no subPath) is
        # updated in place when External Secrets syncs, so revoking a key needs no restart
        "env": [
            *env,
            {"name": "API_KEYS_FILE", "value": API_KEYS_FILE_IN_POD},
            # /metrics only on its own port, which the Ingress does not route
            {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
        ],
        "livenessProbe": {
            "httpGet": {"path": PING_PATH, "port": "http"},
            "periodSeconds": int(thresholds.health_probe_interval_seconds),
            "failureThreshold": int(thresholds.health_probe_failures),
            "timeoutSeconds": 5,
        },
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "startupProbe": {
            "httpGet": {"path": PING_PATH, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 24,
        },
        "resources": config.api.resources.manifest(),
    }
    scrape = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": METRICS_PATH,
    }
    template = app_pod_template(
        scope, "api", container, scrape, extra_volumes=(_api_keys_volume(scope),)
    )
    app_deployment(scope, API_DEPLOYMENT, "api", template, documents, config.api.replicas)


def _worker_probes(queue: str) -> Manifest:
    """Liveness/readiness from the alive keys this pod's workers beat (app.worker.probe)."""
    command = ["python", "-m", "app.worker.probe", "--queue", queue]
    return {
        "readinessProbe": {
            "exec": {"command": command},
            "initialDelaySeconds": 20,
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "exec": {"command": command},
            "initialDelaySeconds": 60,  # the model loads before the first beat
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 4,
        },
    }


@dataclass(frozen=True)
class QueueWorker:
    """One kind of RQ worker pod: what it runs, how big it is and how KEDA scales it."""

    deployment: str
    component: Component
    command: tuple[str, ...]
    queue: str
    list_key: str  # the Redis list of waiting jobs (KEDA's redis trigger)
    resources: Resources
    replicas: tuple[int, int]  # KEDA's min, max
    waiting_per_replica: int
    in_flight_per_replica: int
    grace_seconds: int
    scale_down_window: int | None = None


def queue_workers(scope: ServiceScope) -> tuple[QueueWorker, ...]:
    """The chat worker (the chat queue only; one process per pod, its loops are the pod's
    capacity) and the ingestion workers on their own queue: KEDA counts waiting and running
    ingest jobs (Prometheus: rq_jobs queued + started) so it never scales in under a running
    job, and the grace period lets a job finish after SIGTERM."""
    config = scope.config
    chat, ingest = config.worker, config.ingest_worker
    return (
        QueueWorker(
            deployment=WORKER_DEPLOYMENT,
            component="worker",
            command=(
                *("python", "-m", "app.worker"),
                *("--workers", "1", "--threads", str(chat.threads_per_pod)),
            ),
            queue=QUEUE_NAME,
            list_key=QUEUE_KEY,
            resources=chat.resources,
            replicas=(chat.min_replicas, chat.max_replicas),
            waiting_per_replica=chat.queue_length_target,
            in_flight_per_replica=chat.in_flight_target,
            grace_seconds=config.worker_grace_seconds,
        ),
        QueueWorker(
            deployment=INGEST_WORKER_DEPLOYMENT,
            component="ingest-worker",
            command=("python", "-m", "app.ingest.worker", "--workers", str(ingest.workers_per_pod)),
            queue=INGEST_QUEUE_NAME,
            list_key=INGEST_QUEUE_KEY,
            resources=ingest.resources,
            replicas=(ingest.min_replicas, ingest.max_replicas),
            waiting_per_replica=ingest.jobs_per_replica,
            in_flight_per_replica=ingest.jobs_per_replica,
            grace_seconds=ingest.termination_grace_seconds,
            # scale in only after the in-flight count has stayed low for the grace period
            scale_down_window=min(ingest.termination_grace_seconds, 3600),
        ),
    )


def queue_worker(
    scope: ServiceScope,
    worker: QueueWorker,
    env: list[Manifest],
    documents: k8s.core.v1.PersistentVolumeClaim,
) -> None:
    """The worker's Deployment (no `replicas`: KEDA's ScaledObject owns the count)."""
    container = {
        "name": worker.component,
        "image": scope.config.image.ref,
        "imagePullPolicy": "IfNotPresent",
        "command": list(worker.command),
        "env": env,
        "resources": worker.resources.manifest(),
        **_worker_probes(worker.queue),
    }
    template = app_pod_template(
        scope, worker.component, container, {}, grace_seconds=worker.grace_seconds
    )
    deployment = app_deployment(scope, worker.deployment, worker.component, template, documents)
    scaled_object(
        scope,
        worker.deployment,
        worker.component,
        deployment,
        worker.replicas,
        [
            redis_trigger(scope, worker.list_key, worker.waiting_per_replica),
            in_flight_trigger(scope, worker.queue, worker.in_flight_per_replica),
        ],
        scale_down_window=worker.scale_down_window,
    )


__all__ = ["QueueWorker", "api", "app_deployment", "app_env", "queue_worker", "queue_workers"]
