"""Kubernetes RBAC for the deploy identities, beyond the built-in roles bootstrap assigns.

AKS "RBAC Writer"/"RBAC Reader" and EKS "AmazonEKSEditPolicy"/"AmazonEKSViewPolicy" cover only the
built-in API groups. The service stack also creates custom kinds (External Secrets, KEDA,
Prometheus Operator), and live preflight reads cluster-scoped kinds (CRDs, storage and ingress
classes, the ClusterIssuer). So the platform creates, in each service namespace, a Role on
exactly those custom resources (read-write for deployers, read-only for readers), and one
read-only ClusterRole for preflight's reads, bound to two Kubernetes groups. On EKS bootstrap's
access entries put the deploy role in DEPLOYERS_GROUP and the read-only role in READERS_GROUP; on
AKS bootstrap binds these roles to the deploy identity's principal (Entra principals are
Kubernetes RBAC subjects there; AKS evaluates Kubernetes RBAC alongside Azure RBAC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME, EXTERNAL_SECRETS_GROUP

DEPLOYERS_GROUP = f"{APP_NAME}-deployers"  # the prod deploy role (EKS access entry)
READERS_GROUP = f"{APP_NAME}-readers"  # the prod read-only role (previews)
DEPLOYER_ROLE = f"{APP_NAME}-deployer"  # Role in each service namespace
READER_ROLE = f"{APP_NAME}-reader"  # Role in each service namespace
PREFLIGHT_ROLE = f"{APP_NAME}-preflight"  # ClusterRole
WRITE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ_VERBS = ("get", "list", "watch")
# The custom resources the service stack creates, by API group (plural resource names).
# tests/platform_stack walks every custom kind the service program renders: one not listed here
# fails, naming it.
SERVICE_CUSTOM_RESOURCES: Mapping[str, tuple[str, ...]] = {
    EXTERNAL_SECRETS_GROUP: ("externalsecrets", "secretstores"),
    "keda.sh": ("scaledobjects", "triggerauthentications"),
    "monitoring.coreos.com": ("servicemonitors", "probes"),
}
# What live preflight (ops/preflight.py cluster_problems) reads outside the namespaces.
PREFLIGHT_READS: Mapping[str, tuple[str, ...]] = {
    "apiextensions.k8s.io": ("customresourcedefinitions",),
    "storage.k8s.io": ("storageclasses",),
    "networking.k8s.io": ("ingressclasses",),
    "cert-manager.io": ("clusterissuers",),
}


def rules(resources: Mapping[str, Sequence[str]], verbs: Sequence[str]) -> list[dict]:
    return [
        {"apiGroups": [group], "resources": list(names), "verbs": list(verbs)}
        for group, names in sorted(resources.items())
    ]


def group_subject(group: str) -> dict[str, str]:
    return {"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}


@dataclass(frozen=True)
class DeployerRbacArgs:
    namespaces: Sequence[str]
    provider: k8s.Provider
    depends_on: Sequence[pulumi.Resource] = ()  # the namespaces


class DeployerRbac(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: DeployerRbacArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:platform:DeployerRbac", name, None, opts)
        child = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=list(args.depends_on)
        )
        labels = {"app.kubernetes.io/name": APP_NAME}
        for namespace in args.namespaces:
            for role, group, verbs in (
                (DEPLOYER_ROLE, DEPLOYERS_GROUP, WRITE_VERBS),
                (READER_ROLE, READERS_GROUP, READ_VERBS),
            ):
                meta = {"name": role, "namespace": namespace, "labels": labels}
                k8s.rbac.v1.Role(
                    f"{name}-{namespace}-{role}",
                    metadata=meta,
                    rules=rules(SERVICE_CUSTOM_RESOURCES, verbs),
                    opts=child,
                )
                k8s.rbac.v1.RoleBinding(
                    f"{name}-{namespace}-{role}-binding",
                    metadata=meta,
                    role_ref={
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": role,
                    },
                    subjects=[group_subject(group)],
                    opts=child,
                )
        meta = {"name": PREFLIGHT_ROLE, "labels": labels}
        k8s.rbac.v1.ClusterRole(
            f"{name}-{PREFLIGHT_ROLE}",
            metadata=meta,
            rules=rules(PREFLIGHT_READS, READ_VERBS),
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-{PREFLIGHT_ROLE}-binding",
            metadata=meta,
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": PREFLIGHT_ROLE,
            },
            subjects=[group_subject(DEPLOYERS_GROUP), group_subject(READERS_GROUP)],
            opts=child,
        )
        self.register_outputs({})
