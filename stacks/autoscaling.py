"""KEDA: a ScaledObject per worker Deployment, its triggers, and the Redis TriggerAuthentication.

A worker scales on two targets per replica: the Redis list of jobs no loop has taken yet, and the
jobs waiting or running (the rq_jobs gauge, via Prometheus) so KEDA never scales in under a
running job.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from app.contracts import APP_NAME, METRIC_RQ_JOBS, REDIS_PASSWORD_SECRET
from stacks.kube import Component
from stacks.pods import Manifest, ServiceScope
from stacks.stores import REDIS_NAME, REDIS_PORT

KEDA_REDIS_AUTH = f"{APP_NAME}-redis-auth"  # TriggerAuthentication with the Redis password


def redis_trigger(scope: ServiceScope, list_key: str, per_replica: int) -> Manifest:
    return {
        "type": "redis",
        "metadata": {
            "address": f"{REDIS_NAME}.{scope.config.namespace}.svc.cluster.local:{REDIS_PORT}",
            "listName": list_key,
            "listLength": str(per_replica),
            "databaseIndex": "0",
        },
        "authenticationRef": {"name": KEDA_REDIS_AUTH},
    }


def in_flight_trigger(scope: ServiceScope, queue: str, per_replica: int) -> Manifest:
    """Jobs waiting or running on ``queue`` (the rq_jobs gauge, via Prometheus): the list
    alone is empty while every job is running, and would let KEDA scale in. Every API
    replica exports the same gauge (read from Redis), hence ``max`` over replicas per status
    before the sum."""
    namespace = scope.config.namespace  # another stack's series in the same Prometheus
    series = f'{METRIC_RQ_JOBS}{{namespace="{namespace}",queue="{queue}",status=~"queued|started"}}'
    in_flight = f"sum(max by (status) ({series}))"
    return {
        "type": "prometheus",
        "metadata": {
            "serverAddress": scope.platform.prometheus_url,
            "query": in_flight,
            "threshold": str(per_replica),
        },
    }


def scaled_object(
    scope: ServiceScope,
    name: str,
    component: Component,
    deployment: k8s.apps.v1.Deployment,
    replicas: tuple[int, int],
    triggers: list[Manifest],
    scale_down_window: int | None = None,
) -> None:
    """KEDA owns the Deployment's replica count, between `replicas` (min, max)."""
    spec: Manifest = {
        "scaleTargetRef": {"name": name},
        "minReplicaCount": replicas[0],
        "maxReplicaCount": replicas[1],
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
        f"{scope.name}-{component}-scaler",
        api_version="keda.sh/v1alpha1",
        kind="ScaledObject",
        metadata=scope.meta(name, component),
        spec=spec,
        opts=scope.opts(deployment),
    )


def keda_auth(scope: ServiceScope) -> None:
    """KEDA reads the queue lengths with the Redis password from the synced Secret."""
    k8s.apiextensions.CustomResource(
        f"{scope.name}-keda-redis-auth",
        api_version="keda.sh/v1alpha1",
        kind="TriggerAuthentication",
        metadata=scope.meta(KEDA_REDIS_AUTH, "redis"),
        spec={
            "secretTargetRef": [
                {"parameter": "password", "name": scope.secret_name, "key": REDIS_PASSWORD_SECRET}
            ]
        },
        opts=scope.opts(*scope.waits),
    )
