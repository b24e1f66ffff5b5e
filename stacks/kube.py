"""Kubernetes basics shared by the components: labels, the provider and the stack's namespace."""

from __future__ import annotations

from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME
from stacks.config import StackConfig

Component = Literal["api", "worker", "redis", "chroma", "secrets"]


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


class KubeNamespace(pulumi.ComponentResource):
    """The Kubernetes provider (from `flowchat:kubeconfig` when set) and the stack's namespace."""

    provider: k8s.Provider | None
    namespace: k8s.core.v1.Namespace

    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:KubeNamespace", name, None, opts)
        self.provider = None
        if config.kubeconfig is not None:
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=pulumi.Output.secret(config.kubeconfig.get_secret_value()),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": config.namespace,
                "labels": {
                    "app.kubernetes.io/name": APP_NAME,
                    "app.kubernetes.io/instance": config.stack,
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
