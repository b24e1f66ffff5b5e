"""The service stacks' namespaces: namespaces are cluster-scoped, and the deploy identity's rights
are namespaced (bootstrap: AKS RBAC Writer, EKS Edit scoped to these namespaces), so the platform
creates them, with Pod Security Admission enforcing `restricted`, and exports their names
(`serviceNamespaces`); the service stack deploys into its namespace and creates none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME
from stacks.kube import POD_SECURITY_LABELS


@dataclass(frozen=True)
class ServiceNamespacesArgs:
    names: Sequence[str]
    provider: k8s.Provider


class ServiceNamespaces(pulumi.ComponentResource):
    names: list[str]

    def __init__(
        self, name: str, args: ServiceNamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:platform:ServiceNamespaces", name, None, opts)
        self.names = list(args.names)
        for namespace in self.names:
            k8s.core.v1.Namespace(
                f"{name}-{namespace}",
                metadata={
                    "name": namespace,
                    "labels": {"app.kubernetes.io/name": APP_NAME, **POD_SECURITY_LABELS},
                },
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
        self.register_outputs({"names": self.names})
