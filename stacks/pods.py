"""Building blocks of the service's pods and the scope every service object is created in.

`ServiceScope` carries what each builder of `stacks.service` needs (config, the namespace's
provider, the parent component, the synced Secret and what pods wait for); `app_pod_template` is
the one pod template of the flowchat image (API, chat worker, ingest worker).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from app.contracts import APP_NAME, RESTARTED_AT_ANNOTATION
from stacks.config import StackConfig
from stacks.kube import Component, KubeNamespace, labels, metadata
from stacks.platform_ref import Platform

ROTATION_ANNOTATION = "flowchat.io/credentials-version"
# set by ops.rotate_credentials / ops.worker (and `kubectl rollout restart`)
IGNORE_RESTARTS = [f'spec.template.metadata.annotations["{RESTARTED_AT_ANNOTATION}"]']
DOCUMENTS_MOUNT = "/var/lib/flowchat/documents"
DOCUMENTS_PVC = f"{APP_NAME}-documents"
APP_UID = 10001  # the user of the flowchat image (Dockerfile)
METRICS_PORT_NAME = "metrics"  # the API's /metrics port; the ServiceMonitor scrapes it by name
REGISTRY_PULL_SECRET = f"{APP_NAME}-registry"  # a dockerconfigjson Secret (stacks.registry)
TMP_MOUNT = "/tmp"  # an emptyDir: every root filesystem is read-only
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}

Manifest = dict[str, object]
VolumeAndMount = tuple[Manifest, Manifest]


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1G, 1500000) in bytes."""
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(float(quantity))


def container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pod_security(uid: int) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def volume_claim(size: str, storage_class: object, mode: str) -> Manifest:
    """A claim on `storage_class` (the platform's class name, never the cluster's default)."""
    return {
        "accessModes": [mode],
        "resources": {"requests": {"storage": size}},
        "storageClassName": storage_class,
    }


@dataclass(frozen=True)
class ServiceScope:
    """Where the service's objects go: `name` prefixes logical names, `parent` owns them."""

    config: StackConfig
    kube: KubeNamespace
    name: str
    parent: pulumi.Resource
    secret_name: str
    platform: Platform
    waits: tuple[pulumi.Resource, ...] = ()  # the ExternalSecret: pods start once it is synced

    def opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return self.kube.opts_for(self.parent, *depends_on)

    def restartable_opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options of a Deployment whose restarts (`restartedAt`) Pulumi neither undoes nor
        reports."""
        return pulumi.ResourceOptions.merge(
            self.opts(*depends_on), pulumi.ResourceOptions(ignore_changes=IGNORE_RESTARTS)
        )

    def meta(self, name: str, component: Component, **extra: object) -> Manifest:
        return metadata(name, self.config.namespace, self.config.stack, component, **extra)


def app_pod_template(
    scope: ServiceScope,
    component: Component,
    container: Manifest,
    annotations: dict[str, str],
    extra_volumes: tuple[VolumeAndMount, ...] = (),
    grace_seconds: int | None = None,
) -> Manifest:
    """Pod template of the app image: documents volume, /tmp emptyDir, read-only root;
    `extra_volumes` are (volume, mount) pairs."""
    config = scope.config
    container["volumeMounts"] = [
        {"name": "documents", "mountPath": DOCUMENTS_MOUNT},
        {"name": "tmp", "mountPath": TMP_MOUNT},
        *(mount for _, mount in extra_volumes),
    ]
    container["securityContext"] = {**container_security(), "runAsUser": APP_UID}
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(APP_UID),
        "containers": [container],
        "volumes": [
            {"name": "documents", "persistentVolumeClaim": {"claimName": DOCUMENTS_PVC}},
            {"name": "tmp", "emptyDir": {}},
            *(volume for volume, _ in extra_volumes),
        ],
    }
    if grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    if config.image.pull_auth is not None:  # stacks.registry makes the Secret
        spec["imagePullSecrets"] = [{"name": REGISTRY_PULL_SECRET}]
    return {
        "metadata": {
            "labels": labels(config.stack, component),
            "annotations": {ROTATION_ANNOTATION: config.credentials_version, **annotations},
        },
        "spec": spec,
    }
