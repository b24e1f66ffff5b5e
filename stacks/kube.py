"""Kubernetes basics shared by the components: labels, the provider and the stack's namespace."""

from __future__ import annotations

from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME
from stacks.config import StackConfig

Component = Literal["api", "worker", "ingest-worker", "redis", "chroma", "secrets"]


def selector_labels(stack: str, component: Component) -> dict[str, str]:
    """The labels Services, NetworkPolicies and controllers select pods by."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": stack,
    }


def labels(stack: str, component: Component) -> dict[str, str]:
    return {**selector_labels(stack, component), "app.kubernetes.io/part-of": APP_NAME}


def metadata(
    name: str, namespace: str, stack: str, component: Component, **extra: object
) -> dict[str, object]:
    return {"name": name, "namespace": namespace, "labels": labels(stack, component), **extra}


# Pod Security Admission: the namespace enforces the `restricted` profile.
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}


class KubeNamespace(pulumi.ComponentResource):
    """The stack's namespace, created through the explicit Kubernetes provider.

    `provider` is the program's explicit `k8s.Provider` (stacks.providers); every namespaced
    resource of the other components uses it through `opts_for`.
    """

    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace

    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("flowchat:stacks:KubeNamespace", name, None, opts)
        self.provider = provider
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": config.namespace,
                "labels": {
                    "app.kubernetes.io/name": APP_NAME,
                    "app.kubernetes.io/instance": config.stack,
                    **POD_SECURITY_LABELS,
                },
            },
            opts=self.child_opts(),
        )
        self.register_outputs({"namespace": config.namespace})

    def child_opts(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.provider)

    def opts_for(
        self, parent: pulumi.Resource, *depends_on: pulumi.Resource, **kwargs: object
    ) -> pulumi.ResourceOptions:
        """Options for a namespaced resource of another component: provider, parent, ordering."""
        return pulumi.ResourceOptions(
            parent=parent,
            provider=self.provider,
            depends_on=[self.namespace, *depends_on],
            **kwargs,  # type: ignore[arg-type]
        )
