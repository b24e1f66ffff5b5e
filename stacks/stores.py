"""Redis and Chroma: single-replica StatefulSets behind headless Services.

Both have a volumeClaimTemplate `data` (so Chroma's PVC is `data-flowchat-chroma-0`, watched by
the volume alerts) on the stack's ReadWriteOnce storage class.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from app.contracts import APP_NAME, CHROMA_STATEFULSET, REDIS_AOF_ARGS, REDIS_PASSWORD_SECRET
from stacks.chroma_auth import chroma_server
from stacks.kube import Component, labels, selector_labels
from stacks.pods import (
    REGISTRY_PULL_SECRET,
    TMP_MOUNT,
    Manifest,
    ServiceScope,
    container_security,
    pod_security,
    quantity_bytes,
    secret_env,
    volume_claim,
)

REDIS_NAME = f"{APP_NAME}-redis"
REDIS_PORT = 6379
CHROMA_NAME = CHROMA_STATEFULSET
CHROMA_PORT = 8000
CHROMA_DATA_DIR = "/data"  # the Chroma server's persist path
REDIS_UID = 10999  # > 10000 (no clash with host users); the redis image runs as any uid
CHROMA_UID = 11000  # > 10000; chroma writes only /data (fsGroup) and /tmp
REDIS_AUTH_CONF = "${TMPDIR:-" + TMP_MOUNT + "}/redis-auth.conf"  # the pod has no TMPDIR
# `sh -c SCRIPT ARGS...`: ARGS become "$@" after the `redis` placeholder for $0
REDIS_START = (
    f'umask 077 && printf \'requirepass "%s"\\n\' "$REDIS_PASSWORD" > {REDIS_AUTH_CONF} '
    f'&& exec redis-server {REDIS_AUTH_CONF} "$@"'
)
REDIS_MAXMEMORY_RATIO = 0.75  # of the container memory limit; the rest is AOF rewrite headroom


def redis_maxmemory(memory_limit: str) -> int:
    """Redis `maxmemory` for a container limit: REDIS_MAXMEMORY_RATIO of it, in bytes."""
    return int(quantity_bytes(memory_limit) * REDIS_MAXMEMORY_RATIO)


def redis_url(namespace: str) -> str:
    return f"redis://{REDIS_NAME}.{namespace}.svc.cluster.local:{REDIS_PORT}/0"


def chroma_url(namespace: str) -> str:
    return f"http://{CHROMA_NAME}.{namespace}.svc.cluster.local:{CHROMA_PORT}"


def _headless_service(
    scope: ServiceScope, name: str, component: Component, port: int, port_name: str
) -> None:
    k8s.core.v1.Service(
        f"{scope.name}-{component}-service",
        metadata=scope.meta(name, component),
        spec={
            "clusterIP": "None",
            "selector": selector_labels(scope.config.stack, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
        opts=scope.opts(),
    )


def _stateful_set(
    scope: ServiceScope,
    name: str,
    component: Component,
    container: Manifest,
    uid: int,
    size: str,
    tmp_in_memory: bool = False,
    app_image: bool = False,
) -> None:
    """``app_image``: the container runs the service's own image, pulled with the registry
    Secret like the app pods (stacks.registry)."""
    config = scope.config
    tmp: Manifest = {"medium": "Memory"} if tmp_in_memory else {}
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(uid),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": tmp}],
    }
    if app_image and config.image.pull_auth is not None:
        pod["imagePullSecrets"] = [{"name": REGISTRY_PULL_SECRET}]
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),  # type: ignore[misc]
        {"name": "tmp", "mountPath": TMP_MOUNT},
    ]
    k8s.apps.v1.StatefulSet(
        f"{scope.name}-{component}",
        metadata=scope.meta(name, component),
        spec={
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(config.stack, component)},
            "template": {
                "metadata": {"labels": labels(config.stack, component)},
                "spec": pod,
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": labels(config.stack, component)},
                    "spec": volume_claim(size, scope.platform.storage_class, "ReadWriteOnce"),
                }
            ],
        },
        opts=scope.opts(*scope.waits),
    )


def redis(scope: ServiceScope) -> None:
    config = scope.config.redis
    _headless_service(scope, REDIS_NAME, "redis", REDIS_PORT, "redis")
    _stateful_set(
        scope,
        REDIS_NAME,
        "redis",
        {
            "name": "redis",
            "image": config.image,
            # the password never reaches argv: the shell writes it to a config file on the
            # pod's memory-backed /tmp and redis-server (PID 1 after exec) reads that file
            "command": ["sh", "-c", REDIS_START],
            "args": [
                "redis",  # $0 of the start script
                *REDIS_AOF_ARGS,  # fsync before answering: a 202 survives a crash
                *("--dir", "/data"),
                *("--maxmemory", str(redis_maxmemory(config.resources.memory_limit))),
                *("--maxmemory-policy", "noeviction"),  # never drop a queued job
            ],
            "env": [
                secret_env("REDIS_PASSWORD", scope.secret_name, REDIS_PASSWORD_SECRET),
                # redis-cli (the readiness probe) authenticates with it
                secret_env("REDISCLI_AUTH", scope.secret_name, REDIS_PASSWORD_SECRET),
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
            "resources": config.resources.manifest(),
            "securityContext": container_security(),
        },
        REDIS_UID,
        config.volume_size,
        tmp_in_memory=True,  # the auth file never touches the node's disk
    )


def chroma(scope: ServiceScope) -> None:
    config = scope.config.chroma
    _headless_service(scope, CHROMA_NAME, "chroma", CHROMA_PORT, "http")
    heartbeat = {"path": "/api/v2/heartbeat", "port": "http"}
    _stateful_set(
        scope,
        CHROMA_NAME,
        "chroma",
        # chromadb's Python server from the service image: it requires CHROMA_TOKEN
        chroma_server(scope.config.image.ref, scope.secret_name, CHROMA_PORT, CHROMA_DATA_DIR)
        | {
            "ports": [{"name": "http", "containerPort": CHROMA_PORT}],
            "volumeMounts": [{"name": "data", "mountPath": CHROMA_DATA_DIR}],
            "readinessProbe": {"httpGet": dict(heartbeat), "periodSeconds": 10},
            "livenessProbe": {
                "httpGet": dict(heartbeat),
                "periodSeconds": 20,
                "failureThreshold": 3,
            },
            "resources": config.resources.manifest(),
            "securityContext": container_security(),
        },
        CHROMA_UID,
        config.volume_size,
        app_image=True,
    )
