"""What the service stack takes from the platform: one typed contract, two ways to get it.

`PlatformOutputs` names every value the platform program (`platform_stack/`) exports and the
service reads: the IngressClass and the namespace its controller runs in, the ReadWriteOnce and
ReadWriteMany storage classes, the cert-manager ClusterIssuer, the service's DNS name, the
cluster's OIDC issuer, Prometheus, the blackbox prober, where KEDA runs, the network policy
engine, and the service stacks' namespaces (which exist before the service deploys); and the
Pushgateway the nightly evaluation pushes to (read by bootstrap, not by the service).
`flowchat:platform` says where they come from:

* ``{"stack": "flowchat-platform/staging"}``: a StackReference to the platform stack in the
  same Pulumi organization (or ``ORG/flowchat-platform/staging``); values are Outputs read with
  `require_output`, so a missing output fails the `up` naming it;
* ``{"external": {...}}``: a team that runs its own cluster passes the same values itself
  (`python -m ops.preflight` checks them against the cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pydantic import field_validator, model_validator

from stacks.config_types import DNS_NAME, ConfigModel

PLATFORM_PROJECT = "flowchat-platform"
# engines that enforce NetworkPolicy objects; "none" means the policies silently do nothing
NetworkPolicyEngine = Literal["azure", "cilium", "calico", "vpc-cni"]
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")


class PlatformOutputs(ConfigModel):
    """The platform stack's outputs the service reads (camelCase names, as exported)."""

    cluster_name: str
    ingress_class: str
    ingress_namespace: str
    storage_class: str  # ReadWriteOnce: Redis, Chroma
    shared_storage_class: str  # ReadWriteMany: the documents volume
    cluster_issuer: str  # cert-manager ClusterIssuer with a publicly trusted CA
    hostname: str  # the service's DNS name, a record the platform (or the team) created
    oidc_issuer_url: str  # the cluster's service-account token issuer
    oidc_provider_arn: str = ""  # EKS: the IAM OIDC provider of that issuer (IRSA); AKS: ""
    prometheus_url: str
    prober_url: str
    # the Pushgateway the nightly evaluation pushes to (in-cluster; read by bootstrap for
    # evaluate.yml's PUSHGATEWAY_URL, not by the service), scraped by that Prometheus
    pushgateway_url: str
    keda_namespace: str
    monitoring_namespace: str
    network_policy_engine: NetworkPolicyEngine
    # namespaces that exist for the service stacks (cluster-scoped: the platform, or the team
    # with its own cluster, creates them; the deploy identity may only write inside them)
    service_namespaces: list[str]

    @field_validator("hostname")
    @classmethod
    def _check_hostname(cls, value: str) -> str:
        if not DNS_NAME.match(value):
            raise ValueError("must be a lower-case DNS name")
        if value.endswith(PLACEHOLDER_DOMAINS):
            raise ValueError("is a documentation domain (example.com): use the real zone")
        return value


OUTPUT_NAMES: tuple[str, ...] = tuple(
    field.alias or name for name, field in PlatformOutputs.model_fields.items()
)


class PlatformConfig(ConfigModel):
    """`flowchat:platform`: exactly one of `stack` (StackReference) or `external` (values)."""

    stack: str | None = None
    external: PlatformOutputs | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PlatformConfig:
        if (self.stack is None) == (self.external is None):
            raise ValueError(
                "set exactly one of stack (ORG/flowchat-platform/STACK) or external (the values)"
            )
        if self.stack is not None and self.stack.count("/") not in (1, 2):
            raise ValueError("stack must be PROJECT/STACK or ORG/PROJECT/STACK")
        return self


@dataclass(frozen=True)
class Platform:
    """The platform's values as the program uses them: plain strings or Outputs."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        alias = PlatformOutputs.model_fields[name].alias or name
        try:
            return self.values[alias]
        except KeyError:
            raise AttributeError(name) from None


def platform_stack_name(stack: str) -> str:
    """PROJECT/STACK -> ORG/PROJECT/STACK in this program's organization."""
    return stack if stack.count("/") == 2 else f"{pulumi.get_organization()}/{stack}"


def resolve_platform(config: PlatformConfig) -> Platform:
    """Every platform value: from the StackReference, or the external values as given."""
    if config.external is not None:
        return Platform(config.external.model_dump(by_alias=True))
    ref = pulumi.StackReference(platform_stack_name(str(config.stack)))
    return Platform({name: ref.require_output(name) for name in OUTPUT_NAMES})


__all__ = [
    "OUTPUT_NAMES",
    "PLATFORM_PROJECT",
    "Platform",
    "PlatformConfig",
    "PlatformOutputs",
    "resolve_platform",
]
