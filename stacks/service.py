"""The flowchat service on Kubernetes: Redis, Chroma, documents, API, worker, network policies.

Object names are fixed (`metadata.name` set everywhere): the API and worker Deployments are
`app.contracts.API_DEPLOYMENT` / `WORKER_DEPLOYMENT`, Redis and Chroma are StatefulSets
`flowchat-redis` / `flowchat-chroma` with a volumeClaimTemplate `data` (so Chroma's PVC is
`data-flowchat-chroma-0`, watched by the volume alerts).

Metrics: a Prometheus Operator `ServiceMonitor` (`monitoring.coreos.com/v1`, named like the API)
selects the API Service by its labels and scrapes its `http` port at `/metrics` every 30 s. A
Prometheus whose `serviceMonitorSelector` or `serviceMonitorNamespaceSelector` is narrower (e.g.
`release: prometheus`) must be widened to match, or nothing is scraped (see docs/runbook.md).

Credential rotation: `ops.rotate_credentials` writes new secret versions, forces the
ExternalSecret to sync (`force-sync` annotation) and restarts both Deployments the way
`kubectl rollout restart` does (the pod-template annotation `kubectl.kubernetes.io/restartedAt`).
The Deployments ignore changes to that annotation, so neither the next `pulumi up` nor the drift
check undoes or reports a restart. The pod templates also carry `flowchat.io/credentials-version`
(stack config `flowchat:credentialsVersion`): bumping it in config rolls the pods through Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import (
    API_DEPLOYMENT,
    API_KEYS_FILE_IN_POD,
    API_KEYS_SECRET,
    APP_NAME,
    CHROMA_PVC,
    CHROMA_STATEFULSET,
    CHROMA_TOKEN_SECRET,
    DEFAULT_PORT,
    EXTERNAL_SECRET,
    INGEST_QUEUE_KEY,
    INGEST_QUEUE_NAME,
    INGEST_WORKER_DEPLOYMENT,
    KEY_ID_SECRET_KEY,
    METRIC_RQ_JOBS,
    METRICS_PATH,
    METRICS_PORT,
    PING_PATH,
    QUEUE_KEY,
    QUEUE_NAME,
    READY_PATH,
    REDIS_AOF_ARGS,
    REDIS_PASSWORD_SECRET,
    RESTARTED_AT_ANNOTATION,
    SECRET_KEYS,
    WORKER_DEPLOYMENT,
)
from stacks.chroma_auth import chroma_server
from stacks.config import Resources, StackConfig
from stacks.kube import Component, KubeNamespace, labels, metadata, selector_labels

ROTATION_ANNOTATION = "flowchat.io/credentials-version"
# set by ops.rotate_credentials / ops.worker (and `kubectl rollout restart`)
IGNORE_RESTARTS = [f'spec.template.metadata.annotations["{RESTARTED_AT_ANNOTATION}"]']
DOCUMENTS_MOUNT = "/var/lib/flowchat/documents"
REDIS_NAME = f"{APP_NAME}-redis"
REDIS_PORT = 6379
CHROMA_NAME = CHROMA_STATEFULSET
CHROMA_PORT = 8000
CHROMA_DATA_DIR = "/data"  # chromadb/chroma 1.x persist path
DOCUMENTS_PVC = f"{APP_NAME}-documents"
APP_UID = 10001  # the user of the flowchat image (Dockerfile)
REDIS_UID = 10999  # > 10000 (no clash with host users); the redis image runs as any uid
CHROMA_UID = 11000  # > 10000; chroma writes only /data (fsGroup) and /tmp
API_PORT_NAME = "http"  # the API Service's port (what the Ingress routes)
METRICS_PORT_NAME = "metrics"  # the API's /metrics port; the ServiceMonitor scrapes it by name
METRICS_SCRAPE_INTERVAL = "30s"
# what the Ingress routes: the chat and document API, the status banner, the OpenAI-compatible
# API, the page and its assets; never /api/health/* (probes reach the Service in the cluster)
INGRESS_PATHS = (
    ("/api/chat", "Prefix"),
    ("/api/documents", "Prefix"),
    ("/api/status", "Exact"),
    ("/v1", "Prefix"),
    ("/", "Exact"),
    ("/static", "Prefix"),
)
REDIS_MAXMEMORY_RATIO = 0.75  # of the container memory limit; the rest is AOF rewrite headroom
TMP_MOUNT = "/tmp"  # an emptyDir: every root filesystem is read-only
API_KEYS_VOLUME = "api-keys"
KEDA_REDIS_AUTH = f"{APP_NAME}-redis-auth"  # TriggerAuthentication with the Redis password
DNS_PORT = 53
HTTPS_PORT = 443
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1G, 1500000) in bytes."""
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(float(quantity))


def redis_maxmemory(memory_limit: str) -> int:
    """Redis `maxmemory` for a container limit: REDIS_MAXMEMORY_RATIO of it, in bytes."""
    return int(quantity_bytes(memory_limit) * REDIS_MAXMEMORY_RATIO)


@dataclass(frozen=True)
class ServiceArgs:
    config: StackConfig
    kube: KubeNamespace
    secret_name: str = EXTERNAL_SECRET
    depends_on: tuple[pulumi.Resource, ...] = ()


def _container_security() -> dict[str, object]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, object]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _pod_security(uid: int) -> dict[str, object]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volume_claim(size: str, storage_class: str | None, mode: str) -> dict[str, object]:
    spec: dict[str, object] = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return spec


class Service(pulumi.ComponentResource):
    """Every Kubernetes object of the running service in the stack's namespace."""

    api_service_url: str  # in-cluster URL of the API (for the blackbox probe)
    chroma_pvc_name: str  # PVC of the Chroma volume (for the volume alerts)

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Service", name, None, opts)
        self._config = config = args.config
        self._kube = args.kube
        self._name = name
        ns = config.namespace
        self.redis_url = f"redis://{REDIS_NAME}.{ns}.svc.cluster.local:{REDIS_PORT}/0"
        self.chroma_url = f"http://{CHROMA_NAME}.{ns}.svc.cluster.local:{CHROMA_PORT}"
        self.api_service_url = f"http://{API_DEPLOYMENT}.{ns}.svc.cluster.local:{DEFAULT_PORT}"
        self.chroma_pvc_name = CHROMA_PVC

        self._secret_name = args.secret_name
        self._waits = args.depends_on  # the ExternalSecret: pods start once it is synced
        self._redis()
        self._chroma()
        documents = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-documents",
            metadata=metadata(DOCUMENTS_PVC, ns, config.stack, "api"),
            spec=_volume_claim(
                config.documents.volume_size, config.documents.storage_class, "ReadWriteMany"
            ),
            opts=self._opts(),
        )
        env = self._app_env(args.secret_name)
        self._api(env, documents, args.depends_on)
        self._worker(env, documents, args.depends_on)
        self._ingest_worker(env, documents, args.depends_on)
        self._keda_auth()
        self._disruption_budgets()
        self._network_policies()
        self.register_outputs(
            {
                "namespace": ns,
                "apiServiceUrl": self.api_service_url,
                "chromaPvcName": self.chroma_pvc_name,
                "hostname": config.hostname,
            }
        )

    # --- helpers ---------------------------------------------------
    def _opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return self._kube.opts_for(self, *depends_on)

    def _meta(self, name: str, component: Component, **extra: object) -> dict[str, object]:
        return metadata(name, self._config.namespace, self._config.stack, component, **extra)

    def _headless_service(self, name: str, component: Component, port: int, port_name: str) -> None:
        k8s.core.v1.Service(
            f"{self._name}-{component}-service",
            metadata=self._meta(name, component),
            spec={
                "clusterIP": "None",
                "selector": selector_labels(self._config.stack, component),
                "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
            },
            opts=self._opts(),
        )

    def _stateful_set(
        self,
        name: str,
        component: Component,
        container: dict[str, object],
        uid: int,
        size: str,
    ) -> None:
        config = self._config
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),  # type: ignore[misc]
            {"name": "tmp", "mountPath": TMP_MOUNT},
        ]
        k8s.apps.v1.StatefulSet(
            f"{self._name}-{component}",
            metadata=self._meta(name, component),
            spec={
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": selector_labels(config.stack, component)},
                "template": {
                    "metadata": {"labels": labels(config.stack, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": _pod_security(uid),
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data", "labels": labels(config.stack, component)},
                        "spec": _volume_claim(size, config.storage_class, "ReadWriteOnce"),
                    }
                ],
            },
            opts=self._opts(*self._waits),
        )

    # --- Redis and Chroma ---------------------------------------------------
    def _redis(self) -> None:
        redis = self._config.redis
        self._headless_service(REDIS_NAME, "redis", REDIS_PORT, "redis")
        self._stateful_set(
            REDIS_NAME,
            "redis",
            {
                "name": "redis",
                "image": redis.image,
                # $(REDIS_PASSWORD) is expanded by the kubelet from the env below
                "args": [
                    *("--requirepass", "$(REDIS_PASSWORD)"),
                    *REDIS_AOF_ARGS,  # fsync before answering: a 202 survives a crash
                    *("--dir", "/data"),
                    *("--maxmemory", str(redis_maxmemory(redis.resources.memory_limit))),
                    *("--maxmemory-policy", "noeviction"),  # never drop a queued job
                ],
                "env": [
                    _secret_env("REDIS_PASSWORD", self._secret_name, REDIS_PASSWORD_SECRET),
                    # redis-cli (the readiness probe) authenticates with it
                    _secret_env("REDISCLI_AUTH", self._secret_name, REDIS_PASSWORD_SECRET),
                ],
                "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "readinessProbe": {
                    "exec": {"command": ["redis-cli", "ping"]},
                    "periodSeconds": 10,
                },
                "livenessProbe": {
                    "tcpSocket": {"port": "redis"},
                    "periodSeconds": 20,
                    "failureThreshold": 3,
                },
                "resources": redis.resources.manifest(),
                "securityContext": _container_security(),
            },
            REDIS_UID,
            redis.volume_size,
        )

    def _chroma(self) -> None:
        chroma = self._config.chroma
        self._headless_service(CHROMA_NAME, "chroma", CHROMA_PORT, "http")
        self._stateful_set(
            CHROMA_NAME,
            "chroma",
            chroma_server(self._config.image.ref, self._secret_name, CHROMA_PORT, CHROMA_DATA_DIR)
            | {
                "ports": [{"name": "http", "containerPort": CHROMA_PORT}],
                "volumeMounts": [{"name": "data", "mountPath": CHROMA_DATA_DIR}],
                "readinessProbe": {
                    "httpGet": {"path": "/api/v2/heartbeat", "port": "http"},
                    "periodSeconds": 10,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/api/v2/heartbeat", "port": "http"},
                    "periodSeconds": 20,
                    "failureThreshold": 3,
                },
                "resources": chroma.resources.manifest(),
                "securityContext": _container_security(),
            },
            CHROMA_UID,
            chroma.volume_size,
        )

    # --- API and worker ---------------------------------------------------
    def _app_env(self, secret_name: str) -> list[dict[str, object]]:
        config = self._config
        plain = {
            "REDIS_URL": self.redis_url,
            "CHROMA_URL": self.chroma_url,
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
        env: list[dict[str, object]] = [{"name": k, "value": v} for k, v in plain.items()]
        env += [_secret_env(key, secret_name, key) for key in SECRET_KEYS]
        env.append(_secret_env("REDIS_PASSWORD", secret_name, REDIS_PASSWORD_SECRET))
        env.append(_secret_env("KEY_ID_SECRET", secret_name, KEY_ID_SECRET_KEY))
        env.append(_secret_env("CHROMA_TOKEN", secret_name, CHROMA_TOKEN_SECRET))
        return env

    def _pod_template(
        self,
        component: Component,
        container: dict[str, object],
        documents: k8s.core.v1.PersistentVolumeClaim,
        annotations: dict[str, str],
        extra_volumes: tuple[tuple[dict[str, object], dict[str, object]], ...] = (),
        grace_seconds: int | None = None,
    ) -> dict[str, object]:
        """Pod template of the app image: documents volume, /tmp emptyDir, read-only root;
        `extra_volumes` are (volume, mount) pairs."""
        config = self._config
        container["volumeMounts"] = [
            {"name": "documents", "mountPath": DOCUMENTS_MOUNT},
            {"name": "tmp", "mountPath": TMP_MOUNT},
            *(mount for _, mount in extra_volumes),
        ]
        container["securityContext"] = {**_container_security(), "runAsUser": APP_UID}
        spec: dict[str, object] = {
            "automountServiceAccountToken": False,
            "securityContext": _pod_security(APP_UID),
            "containers": [container],
            "volumes": [
                {"name": "documents", "persistentVolumeClaim": {"claimName": DOCUMENTS_PVC}},
                {"name": "tmp", "emptyDir": {}},
                *(volume for volume, _ in extra_volumes),
            ],
        }
        if grace_seconds is not None:
            spec["terminationGracePeriodSeconds"] = grace_seconds
        return {
            "metadata": {
                "labels": labels(config.stack, component),
                "annotations": {ROTATION_ANNOTATION: config.credentials_version, **annotations},
            },
            "spec": spec,
        }

    def _api(
        self,
        env: list[dict[str, object]],
        documents: k8s.core.v1.PersistentVolumeClaim,
        depends_on: tuple[pulumi.Resource, ...],
    ) -> None:
        config = self._config
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
        k8s.apps.v1.Deployment(
            f"{self._name}-api",
            metadata=self._meta(API_DEPLOYMENT, "api"),
            spec={
                "replicas": config.api.replicas,
                "selector": {"matchLabels": selector_labels(config.stack, "api")},
                "template": self._pod_template(
                    "api", container, documents, scrape, extra_volumes=(self._api_keys_volume(),)
                ),
            },
            opts=pulumi.ResourceOptions.merge(
                self._opts(documents, *depends_on),
                pulumi.ResourceOptions(ignore_changes=IGNORE_RESTARTS),
            ),
        )
        api_service = k8s.core.v1.Service(
            f"{self._name}-api-service",
            metadata=self._meta(API_DEPLOYMENT, "api"),
            spec={
                "type": "ClusterIP",
                "selector": selector_labels(config.stack, "api"),
                "ports": [
                    {"name": API_PORT_NAME, "port": DEFAULT_PORT, "targetPort": "http"},
                    {
                        "name": METRICS_PORT_NAME,
                        "port": METRICS_PORT,
                        "targetPort": METRICS_PORT_NAME,
                    },
                ],
            },
            opts=self._opts(),
        )
        self._service_monitor(api_service)
        self._ingress()
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-api-pdb",
            metadata=self._meta(API_DEPLOYMENT, "api"),
            spec={
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector_labels(config.stack, "api")},
            },
            opts=self._opts(),
        )

    def _api_keys_volume(self) -> tuple[dict[str, object], dict[str, object]]:
        directory, _, filename = API_KEYS_FILE_IN_POD.rpartition("/")
        volume = {
            "name": API_KEYS_VOLUME,
            "secret": {
                "secretName": self._secret_name,
                "items": [{"key": API_KEYS_SECRET, "path": filename}],
                "defaultMode": 0o440,
            },
        }
        return volume, {"name": API_KEYS_VOLUME, "mountPath": directory, "readOnly": True}

    def _service_monitor(self, api_service: k8s.core.v1.Service) -> None:
        """Prometheus Operator scrapes /metrics of the API Service (the pod annotations above
        serve annotation-based Prometheus setups; the Operator ignores them)."""
        config = self._config
        k8s.apiextensions.CustomResource(
            f"{self._name}-api-metrics",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={
                **self._meta(API_DEPLOYMENT, "api"),
                "labels": {
                    **labels(config.stack, "api"),
                    **config.addons.monitor_labels,  # what the cluster's Prometheus selects
                },
            },
            spec={
                "selector": {"matchLabels": selector_labels(config.stack, "api")},
                "namespaceSelector": {"matchNames": [config.namespace]},
                "endpoints": [
                    {
                        "port": METRICS_PORT_NAME,
                        "path": METRICS_PATH,
                        "interval": METRICS_SCRAPE_INTERVAL,
                        "scheme": "http",
                    }
                ],
            },
            opts=self._opts(api_service),
        )

    def _ingress(self) -> None:
        config = self._config
        annotations: dict[str, str] = {}
        if config.ingress_class == "nginx":
            annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "25m"  # uploads
        spec: dict[str, object] = {
            "ingressClassName": config.ingress_class,
            "rules": [
                {
                    "host": config.hostname,
                    "http": {
                        # never /metrics, /docs, /openapi.json: Prometheus scrapes the Service
                        "paths": [
                            {
                                "path": path,
                                "pathType": kind,
                                "backend": {
                                    "service": {
                                        "name": API_DEPLOYMENT,
                                        "port": {"number": DEFAULT_PORT},
                                    }
                                },
                            }
                            for path, kind in INGRESS_PATHS
                        ]
                    },
                }
            ],
        }
        if config.tls_issuer:
            annotations["cert-manager.io/cluster-issuer"] = config.tls_issuer
            spec["tls"] = [{"hosts": [config.hostname], "secretName": f"{APP_NAME}-tls"}]
        k8s.networking.v1.Ingress(
            f"{self._name}-api-ingress",
            metadata=self._meta(API_DEPLOYMENT, "api", annotations=annotations),
            spec=spec,
            opts=self._opts(),
        )

    def _worker_probes(self, queue: str) -> dict[str, object]:
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

    def _worker(
        self,
        env: list[dict[str, object]],
        documents: k8s.core.v1.PersistentVolumeClaim,
        depends_on: tuple[pulumi.Resource, ...],
    ) -> None:
        config = self._config
        worker = config.worker
        container = {
            "name": "worker",
            "image": config.image.ref,
            "imagePullPolicy": "IfNotPresent",
            # the chat queue only; one process per pod, its loops are the pod's capacity
            "command": [
                *("python", "-m", "app.worker"),
                *("--workers", "1", "--threads", str(worker.threads_per_pod)),
            ],
            "env": env,
            "resources": worker.resources.manifest(),
            **self._worker_probes(QUEUE_NAME),
        }
        # No `replicas`: KEDA's ScaledObject owns the worker count (min..max below).
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-worker",
            metadata=self._meta(WORKER_DEPLOYMENT, "worker"),
            spec={
                "selector": {"matchLabels": selector_labels(config.stack, "worker")},
                "template": self._pod_template(
                    "worker",
                    container,
                    documents,
                    {},
                    grace_seconds=config.worker_grace_seconds,
                ),
            },
            opts=pulumi.ResourceOptions.merge(
                self._opts(documents, *depends_on),
                pulumi.ResourceOptions(ignore_changes=IGNORE_RESTARTS),
            ),
        )
        self._scaled_object(
            WORKER_DEPLOYMENT,
            "worker",
            deployment,
            worker.min_replicas,
            worker.max_replicas,
            [
                self._redis_trigger(QUEUE_KEY, worker.queue_length_target),
                self._in_flight_trigger(QUEUE_NAME, worker.in_flight_target),
            ],
        )

    def _ingest_worker(
        self,
        env: list[dict[str, object]],
        documents: k8s.core.v1.PersistentVolumeClaim,
        depends_on: tuple[pulumi.Resource, ...],
    ) -> None:
        """Ingestion workers on their own queue; KEDA counts waiting and running ingest jobs
        (Prometheus: rq_jobs queued + started) so it never scales in under a running job, and
        the grace period lets a job finish after SIGTERM."""
        config = self._config
        ingest = config.ingest_worker
        container = {
            "name": "ingest-worker",
            "image": config.image.ref,
            "imagePullPolicy": "IfNotPresent",
            "command": [
                *("python", "-m", "app.ingest.worker"),
                *("--workers", str(ingest.workers_per_pod)),
            ],
            "env": env,
            "resources": ingest.resources.manifest(),
            **self._worker_probes(INGEST_QUEUE_NAME),
        }
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-ingest-worker",
            metadata=self._meta(INGEST_WORKER_DEPLOYMENT, "ingest-worker"),
            spec={
                "selector": {"matchLabels": selector_labels(config.stack, "ingest-worker")},
                "template": self._pod_template(
                    "ingest-worker",
                    container,
                    documents,
                    {},
                    grace_seconds=ingest.termination_grace_seconds,
                ),
            },
            opts=pulumi.ResourceOptions.merge(
                self._opts(documents, *depends_on),
                pulumi.ResourceOptions(ignore_changes=IGNORE_RESTARTS),
            ),
        )
        self._scaled_object(
            INGEST_WORKER_DEPLOYMENT,
            "ingest-worker",
            deployment,
            ingest.min_replicas,
            ingest.max_replicas,
            [
                self._redis_trigger(INGEST_QUEUE_KEY, ingest.jobs_per_replica),
                self._in_flight_trigger(INGEST_QUEUE_NAME, ingest.jobs_per_replica),
            ],
            # scale in only after the in-flight count has stayed low for the grace period
            scale_down_window=min(ingest.termination_grace_seconds, 3600),
        )

    def _redis_trigger(self, list_key: str, per_replica: int) -> dict[str, object]:
        config = self._config
        return {
            "type": "redis",
            "metadata": {
                "address": f"{REDIS_NAME}.{config.namespace}.svc.cluster.local:{REDIS_PORT}",
                "listName": list_key,
                "listLength": str(per_replica),
                "databaseIndex": "0",
            },
            "authenticationRef": {"name": KEDA_REDIS_AUTH},
        }

    def _in_flight_trigger(self, queue: str, per_replica: int) -> dict[str, object]:
        """Jobs waiting or running on ``queue`` (the rq_jobs gauge, via Prometheus): the list
        alone is empty while every job is running, and would let KEDA scale in. Every API
        replica exports the same gauge (read from Redis), hence ``max`` over replicas per status
        before the sum."""
        namespace = self._config.namespace  # another stack's series in the same Prometheus
        series = (
            f'{METRIC_RQ_JOBS}{{namespace="{namespace}",queue="{queue}",status=~"queued|started"}}'
        )
        in_flight = f"sum(max by (status) ({series}))"
        return {
            "type": "prometheus",
            "metadata": {
                "serverAddress": self._config.addons.prometheus_url,
                "query": in_flight,
                "threshold": str(per_replica),
            },
        }

    def _scaled_object(
        self,
        name: str,
        component: Component,
        deployment: k8s.apps.v1.Deployment,
        min_replicas: int,
        max_replicas: int,
        triggers: list[dict[str, object]],
        scale_down_window: int | None = None,
    ) -> None:
        spec: dict[str, object] = {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": triggers,
        }
        if scale_down_window is not None:
            spec["advanced"] = {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": scale_down_window}}
                }
            }
        k8s.apiextensions.CustomResource(
            f"{self._name}-{component}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=self._meta(name, component),
            spec=spec,
            opts=self._opts(deployment),
        )

    def _keda_auth(self) -> None:
        """KEDA reads the queue lengths with the Redis password from the synced Secret."""
        k8s.apiextensions.CustomResource(
            f"{self._name}-keda-redis-auth",
            api_version="keda.sh/v1alpha1",
            kind="TriggerAuthentication",
            metadata=self._meta(KEDA_REDIS_AUTH, "redis"),
            spec={
                "secretTargetRef": [
                    {
                        "parameter": "password",
                        "name": self._secret_name,
                        "key": REDIS_PASSWORD_SECRET,
                    }
                ]
            },
            opts=self._opts(*self._waits),
        )

    def _disruption_budgets(self) -> None:
        """Voluntary evictions (node drains) take one worker at a time; Redis and Chroma are
        single replicas whose eviction is an outage: minAvailable 1 makes a drain wait for an
        operator (docs/runbook.md), never take the queue or the vector store down unplanned."""
        stack = self._config.stack
        budgets: list[tuple[str, Component, dict[str, int]]] = [
            (WORKER_DEPLOYMENT, "worker", {"maxUnavailable": 1}),
            (INGEST_WORKER_DEPLOYMENT, "ingest-worker", {"maxUnavailable": 1}),
            (REDIS_NAME, "redis", {"minAvailable": 1}),
            (CHROMA_NAME, "chroma", {"minAvailable": 1}),
        ]
        for name, component, rule in budgets:
            k8s.policy.v1.PodDisruptionBudget(
                f"{self._name}-{component}-pdb",
                metadata=self._meta(name, component),
                spec={**rule, "selector": {"matchLabels": selector_labels(stack, component)}},
                opts=self._opts(),
            )

    # --- network policies ---------------------------------------------------
    def _network_policies(self) -> None:
        """Ingress and egress for every workload, admitting only the named peers."""
        config = self._config
        stack = config.stack
        addons = config.addons

        def pods(*components: Component) -> dict[str, object]:
            return {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": APP_NAME,
                        "app.kubernetes.io/instance": stack,
                    },
                    "matchExpressions": [
                        {
                            "key": "app.kubernetes.io/component",
                            "operator": "In",
                            "values": list(components),
                        }
                    ],
                }
            }

        def namespace(name: str) -> dict[str, object]:
            return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

        def tcp(port: int) -> list[dict[str, object]]:
            return [{"protocol": "TCP", "port": port}]

        dns = {
            "to": [namespace("kube-system")],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        }
        to_redis = {"to": [pods("redis")], "ports": tcp(REDIS_PORT)}
        to_chroma = {"to": [pods("chroma")], "ports": tcp(CHROMA_PORT)}
        to_flow = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(HTTPS_PORT)}
        workers = ("api", "worker", "ingest-worker")
        # the OpenTelemetry collector's port, in any namespace or outside: only with otlpEndpoint
        otlp = (
            [
                {
                    "to": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}],
                    "ports": tcp(config.otlp_port),
                }
            ]
            if config.otlp_port
            else []
        )
        rules: list[tuple[str, Component, list[dict[str, object]], list[dict[str, object]]]] = [
            (
                API_DEPLOYMENT,
                "api",
                [
                    {"from": [namespace(addons.ingress_namespace)], "ports": tcp(DEFAULT_PORT)},
                    # Prometheus scrapes /metrics and the blackbox exporter probes the ping
                    {
                        "from": [namespace(addons.monitoring_namespace)],
                        "ports": tcp(DEFAULT_PORT) + tcp(METRICS_PORT),
                    },
                ],
                [dns, to_redis, to_chroma, to_flow, *otlp],
            ),
            (WORKER_DEPLOYMENT, "worker", [], [dns, to_redis, to_chroma, to_flow, *otlp]),
            (INGEST_WORKER_DEPLOYMENT, "ingest-worker", [], [dns, to_redis, to_chroma, *otlp]),
            (
                REDIS_NAME,
                "redis",
                [
                    {
                        "from": [pods(*workers), namespace(addons.keda_namespace)],
                        "ports": tcp(REDIS_PORT),
                    }
                ],
                [],
            ),
            (CHROMA_NAME, "chroma", [{"from": [pods(*workers)], "ports": tcp(CHROMA_PORT)}], []),
        ]
        for name, component, ingress, egress in rules:
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{component}-netpol",
                metadata=self._meta(name, component),
                spec={
                    "podSelector": {"matchLabels": selector_labels(stack, component)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": ingress,
                    "egress": egress,
                },
                opts=self._opts(),
            )


__all__ = ["ROTATION_ANNOTATION", "Resources", "Service", "ServiceArgs", "quantity_bytes"]
