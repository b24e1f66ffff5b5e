"""The flowchat service on Kubernetes: Redis, Chroma, documents, API, worker, network policies.

`Service` is the one component; each concern is built by its own module, all children of it:
`stacks.stores` (Redis and Chroma StatefulSets), `stacks.deployments` (API and queue workers, one
pod template from `stacks.pods`), `stacks.autoscaling` (KEDA), `stacks.routing` (API Service,
ServiceMonitor, Ingress), `stacks.disruption` (PodDisruptionBudgets) and
`stacks.network_policies` (a table of peers).

Object names are fixed (`metadata.name` set everywhere): the API and worker Deployments are
`app.contracts.API_DEPLOYMENT` / `WORKER_DEPLOYMENT`, Redis and Chroma are StatefulSets
`flowchat-redis` / `flowchat-chroma` with a volumeClaimTemplate `data` (so Chroma's PVC is
`data-flowchat-chroma-0`, watched by the volume alerts).

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

from app.contracts import API_DEPLOYMENT, CHROMA_PVC, DEFAULT_PORT, EXTERNAL_SECRET
from stacks import autoscaling, deployments, routing, stores
from stacks.config import Resources, StackConfig
from stacks.disruption import disruption_budgets
from stacks.kube import KubeNamespace
from stacks.network_policies import network_policies
from stacks.platform_ref import Platform
from stacks.pods import (
    DOCUMENTS_PVC,
    ROTATION_ANNOTATION,
    ServiceScope,
    quantity_bytes,
    volume_claim,
)
from stacks.registry import pull_secret
from stacks.stores import redis_maxmemory


@dataclass(frozen=True)
class ServiceArgs:
    config: StackConfig
    kube: KubeNamespace
    platform: Platform
    secret_name: str = EXTERNAL_SECRET
    depends_on: tuple[pulumi.Resource, ...] = ()


class Service(pulumi.ComponentResource):
    """Every Kubernetes object of the running service in the stack's namespace."""

    api_service_url: str  # in-cluster URL of the API (for the blackbox probe)
    chroma_pvc_name: str  # PVC of the Chroma volume (for the volume alerts)

    def __init__(
        self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Service", name, None, opts)
        config = args.config
        ns = config.namespace
        self.redis_url = stores.redis_url(ns)
        self.chroma_url = stores.chroma_url(ns)
        self.api_service_url = f"http://{API_DEPLOYMENT}.{ns}.svc.cluster.local:{DEFAULT_PORT}"
        self.chroma_pvc_name = CHROMA_PVC
        platform = args.platform
        scope = ServiceScope(
            config, args.kube, name, self, args.secret_name, platform, args.depends_on
        )

        pull_secret(scope)
        stores.redis(scope)
        stores.chroma(scope)
        documents = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-documents",
            metadata=scope.meta(DOCUMENTS_PVC, "api"),
            spec=volume_claim(
                config.documents.volume_size, platform.shared_storage_class, "ReadWriteMany"
            ),
            opts=scope.opts(),
        )
        env = deployments.app_env(scope)
        deployments.api(scope, env, documents)
        api_service = routing.api_service(scope)
        routing.service_monitor(scope, api_service)
        routing.ingress(scope)
        for worker in deployments.queue_workers(scope):
            deployments.queue_worker(scope, worker, env, documents)
        autoscaling.keda_auth(scope)
        disruption_budgets(scope)
        network_policies(scope)
        self.register_outputs(
            {
                "namespace": ns,
                "apiServiceUrl": self.api_service_url,
                "chromaPvcName": self.chroma_pvc_name,
                "hostname": platform.hostname,
            }
        )


__all__ = [
    "ROTATION_ANNOTATION",
    "Resources",
    "Service",
    "ServiceArgs",
    "quantity_bytes",
    "redis_maxmemory",
]
