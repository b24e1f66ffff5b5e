"""Kubernetes basics shared by the components: labels, the provider and the stack's namespace
(created by the platform, checked here)."""

from __future__ import annotations

from collections.abc import Sequence
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


class NamespaceMissingError(ValueError):
    """The platform has not created the stack's namespace."""


def check_namespace(namespace: str, service_namespaces: Sequence[str]) -> str:
    if namespace not in service_namespaces:
        raise NamespaceMissingError(
            f"namespace {namespace} is not one the platform created (serviceNamespaces: "
            f"{', '.join(service_namespaces) or 'none'}): add it to the platform stack's "
            "flowchat-platform:serviceNamespaces"
        )
    return namespace


class KubeNamespace(pulumi.ComponentResource):
    """The stack's namespace, which the platform created (`platform_stack.namespaces`).

    Namespaces are cluster-scoped and the deploy identity may only write inside its namespaces
    (bootstrap's grants), so the service stack creates none: it checks that its namespace is one
    of the platform's `serviceNamespaces` (the `up` fails naming it otherwise). `provider` is the
    program's explicit `k8s.Provider` (stacks.providers); every namespaced resource of the other
    components uses it through `opts_for`.
    """

    provider: k8s.Provider
    namespace: pulumi.Output[str]  # the name, once checked against the platform's namespaces

    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: k8s.Provider,
        service_namespaces: pulumi.Input[Sequence[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("flowchat:stacks:KubeNamespace", name, None, opts)
        self.provider = provider
        self.namespace = pulumi.Output.from_input(service_namespaces).apply(
            lambda names: check_namespace(config.namespace, list(names))
        )
        self.register_outputs({"namespace": self.namespace})

    def child_opts(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.provider)

    def opts_for(
        self, parent: pulumi.Resource, *depends_on: pulumi.Resource, **kwargs: object
    ) -> pulumi.ResourceOptions:
        """Options for a namespaced resource of another component: provider, parent, ordering."""
        return pulumi.ResourceOptions(
            parent=parent,
            provider=self.provider,
            depends_on=list(depends_on),
            **kwargs,  # type: ignore[arg-type]
        )
