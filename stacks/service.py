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
    APP_NAME,
    CHROMA_PVC,
    CHROMA_STATEFULSET,
    DEFAULT_PORT,
    EXTERNAL_SECRET,
    METRICS_PATH,
    PING_PATH,
    QUEUE_KEY,
    QUEUE_NAME,
    READY_PATH,
    RESTARTED_AT_ANNOTATION,
    SECRET_KEYS,
    WORKER_DEPLOYMENT,
)
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
REDIS_UID = 999  # the redis image's user
CHROMA_UID = 1000
API_PORT_NAME = "http"  # the API Service's port; the ServiceMonitor scrapes it by this name
METRICS_SCRAPE_INTERVAL = "30s"


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
    }


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
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data", "labels": labels(config.stack, component)},
                        "spec": _volume_claim(size, config.storage_class, "ReadWriteOnce"),
                    }
                ],
            },
            opts=self._opts(),
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
                "args": ["--appendonly", "yes", "--dir", "/data"],
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
            {
                "name": "chroma",
                "image": chroma.image,
                "ports": [{"name": "http", "containerPort": CHROMA_PORT}],
                "env": [{"name": "ANONYMIZED_TELEMETRY", "value": "FALSE"}],
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
        env: list[dict[str, object]] = [{"name": k, "value": v} for k, v in plain.items()]
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
            for key in SECRET_KEYS
        ]
        return env

    def _pod_template(
        self,
        component: Component,
        container: dict[str, object],
        documents: k8s.core.v1.PersistentVolumeClaim,
        annotations: dict[str, str],
    ) -> dict[str, object]:
        config = self._config
        container["volumeMounts"] = [{"name": "documents", "mountPath": DOCUMENTS_MOUNT}]
        container["securityContext"] = {**_container_security(), "runAsUser": APP_UID}
        return {
            "metadata": {
                "labels": labels(config.stack, component),
                "annotations": {ROTATION_ANNOTATION: config.credentials_version, **annotations},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": _pod_security(APP_UID),
                "containers": [container],
                "volumes": [
                    {"name": "documents", "persistentVolumeClaim": {"claimName": DOCUMENTS_PVC}}
                ],
            },
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
            "ports": [{"name": "http", "containerPort": DEFAULT_PORT}],
            "env": env,
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
            "prometheus.io/port": str(DEFAULT_PORT),
            "prometheus.io/path": METRICS_PATH,
        }
        k8s.apps.v1.Deployment(
            f"{self._name}-api",
            metadata=self._meta(API_DEPLOYMENT, "api"),
            spec={
                "replicas": config.api.replicas,
                "selector": {"matchLabels": selector_labels(config.stack, "api")},
                "template": self._pod_template("api", container, documents, scrape),
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
                "ports": [{"name": API_PORT_NAME, "port": DEFAULT_PORT, "targetPort": "http"}],
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
                        "port": API_PORT_NAME,
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
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": API_DEPLOYMENT,
                                        "port": {"number": DEFAULT_PORT},
                                    }
                                },
                            }
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
            "command": ["python", "-m", "app.worker"],
            "env": env,
            "resources": worker.resources.manifest(),
        }
        # No `replicas`: KEDA's ScaledObject owns the worker count (min..max below).
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-worker",
            metadata=self._meta(WORKER_DEPLOYMENT, "worker"),
            spec={
                "selector": {"matchLabels": selector_labels(config.stack, "worker")},
                "template": self._pod_template("worker", container, documents, {}),
            },
            opts=pulumi.ResourceOptions.merge(
                self._opts(documents, *depends_on),
                pulumi.ResourceOptions(ignore_changes=IGNORE_RESTARTS),
            ),
        )
        k8s.apiextensions.CustomResource(
            f"{self._name}-worker-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=self._meta(WORKER_DEPLOYMENT, "worker"),
            spec={
                "scaleTargetRef": {"name": WORKER_DEPLOYMENT},
                "minReplicaCount": worker.min_replicas,
                "maxReplicaCount": worker.max_replicas,
                "pollingInterval": 15,
                "cooldownPeriod": 300,
                "triggers": [
                    {
                        "type": "redis",
                        "metadata": {
                            "address": f"{REDIS_NAME}.{config.namespace}.svc.cluster.local:"
                            f"{REDIS_PORT}",
                            "listName": QUEUE_KEY,
                            "listLength": str(worker.queue_length_per_replica),
                            "databaseIndex": "0",
                        },
                    }
                ],
            },
            opts=self._opts(deployment),
        )

    # --- network policies ---------------------------------------------------
    def _network_policies(self) -> None:
        stack = self._config.stack
        clients = {
            "podSelector": {
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/component",
                        "operator": "In",
                        "values": ["api", "worker"],
                    }
                ],
                "matchLabels": {"app.kubernetes.io/name": APP_NAME},
            }
        }
        keda = {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": self._config.addons.keda_namespace}
            }
        }
        rules: list[tuple[str, Component, int, list[dict[str, object]]]] = [
            (REDIS_NAME, "redis", REDIS_PORT, [clients, keda]),
            (CHROMA_NAME, "chroma", CHROMA_PORT, [clients]),
            (API_DEPLOYMENT, "api", DEFAULT_PORT, []),  # open on its port (ingress, probes)
        ]
        for name, component, port, sources in rules:
            rule: dict[str, object] = {"ports": [{"protocol": "TCP", "port": port}]}
            if sources:
                rule["from"] = sources
            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-{component}-netpol",
                metadata=self._meta(name, component),
                spec={
                    "podSelector": {"matchLabels": selector_labels(stack, component)},
                    "policyTypes": ["Ingress"],
                    "ingress": [rule],
                },
                opts=self._opts(),
            )


__all__ = ["ROTATION_ANNOTATION", "Resources", "Service", "ServiceArgs"]
