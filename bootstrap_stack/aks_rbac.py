"""AKS: binds the staging deploy identity to the platform's Kubernetes roles for the service's
custom kinds and preflight's cluster-wide reads (platform_stack.deployer_rbac).

AKS (Entra ID integration) takes Entra principals as Kubernetes RBAC subjects and evaluates
Kubernetes RBAC alongside the Azure role assignments, whose built-in AKS roles cover only the
built-in API groups. The platform runs before bootstrap and cannot know the principal, so the
bindings are made here, with the cluster admin's kubeconfig the platform exports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME
from platform_stack.deployer_rbac import DEPLOYER_ROLE, PREFLIGHT_ROLE

RBAC_API = "rbac.authorization.k8s.io"


def principal_subject(object_id: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """An Entra service principal (a managed identity) by its object id."""
    return {"kind": "User", "name": object_id, "apiGroup": RBAC_API}


@dataclass(frozen=True)
class AksDeployerBindingsArgs:
    principal_id: pulumi.Input[str]  # the deploy identity's object (principal) id
    namespaces: pulumi.Input[Sequence[str]]  # the staging platform's serviceNamespaces
    provider: k8s.Provider


class AksDeployerBindings(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AksDeployerBindingsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:bootstrap:AksDeployerBindings", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        subjects = [principal_subject(args.principal_id)]
        labels = {"app.kubernetes.io/name": APP_NAME}
        binding = f"{APP_NAME}-deploy-identity"
        pulumi.Output.from_input(args.namespaces).apply(
            lambda namespaces: [
                k8s.rbac.v1.RoleBinding(
                    f"{name}-{namespace}-deployer",
                    metadata={"name": binding, "namespace": namespace, "labels": labels},
                    role_ref={"apiGroup": RBAC_API, "kind": "Role", "name": DEPLOYER_ROLE},
                    subjects=subjects,
                    opts=child,
                )
                for namespace in namespaces
            ]
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-preflight",
            metadata={"name": binding, "labels": labels},
            role_ref={"apiGroup": RBAC_API, "kind": "ClusterRole", "name": PREFLIGHT_ROLE},
            subjects=subjects,
            opts=child,
        )
        self.register_outputs({})
