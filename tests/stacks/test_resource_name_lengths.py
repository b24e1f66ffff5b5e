"""Every cloud name the three programs create fits its provider's limit (issue 19).

The service stacks (staging, prod), both platform stacks and the bootstrap stack are rendered
offline; each resource's cloud name is its explicit name input, or, when the program lets Pulumi
auto-name it, its logical name plus the longest auto-name suffix. A name over its type's limit
fails the test naming program, resource, name and limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from stacktools.render import RenderedResource, render_stack

# Pulumi's auto-name: the logical name, "-" and a random suffix of at most 8 characters
# (pulumi/pulumi#16188: "foo-ab158dc9"; the AWS provider adds 7 hex characters).
AUTONAME_SUFFIX = 9
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class Limit:
    fields: tuple[str, ...]  # the input holding the cloud name (first one set wins)
    low: int
    high: int
    source: str


# one row per resource type: its provider's documented length
LIMITS: dict[str, Limit] = {
    # learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
    # (Microsoft.KeyVault vaults: 3-24)
    "azure-native:keyvault:Vault": Limit(("vaultName",), 3, 24, "Key Vault name"),
    # same page, Microsoft.Resources resourcegroups: 1-90
    "azure-native:resources:ResourceGroup": Limit(
        ("resourceGroupName",), 1, 90, "resource group name"
    ),
    # same page, Microsoft.ContainerService managedClusters: 1-63
    "azure-native:containerservice:ManagedCluster": Limit(
        ("resourceName",), 1, 63, "AKS cluster name"
    ),
    # same page, Microsoft.ManagedIdentity userAssignedIdentities: 3-128
    "azure-native:managedidentity:UserAssignedIdentity": Limit(
        ("resourceName",), 3, 128, "managed identity name"
    ),
    # Microsoft.ManagedIdentity REST API, federatedIdentityCredentialResourceName pattern
    # ^[a-zA-Z0-9]{1}[a-zA-Z0-9-_]{2,119}$ (3-120; Azure/azure-workload-identity#372)
    "azure-native:managedidentity:FederatedIdentityCredential": Limit(
        ("federatedIdentityCredentialResourceName",), 3, 120, "federated credential name"
    ),
    # IAM API reference, CreateRole: RoleName length 1-64
    "aws:iam/role:Role": Limit(("name",), 1, 64, "IAM role name"),
    # IAM API reference, CreatePolicy: PolicyName length 1-128
    "aws:iam/policy:Policy": Limit(("name",), 1, 128, "IAM policy name"),
    # IAM API reference, PutRolePolicy: PolicyName length 1-128
    "aws:iam/rolePolicy:RolePolicy": Limit(("name",), 1, 128, "IAM inline policy name"),
    # EKS API reference, CreateCluster: name length 1-100
    "aws:eks/cluster:Cluster": Limit(("name",), 1, 100, "EKS cluster name"),
    # Secrets Manager API reference, CreateSecret: Name length 1-512
    "aws:secretsmanager/secret:Secret": Limit(("name",), 1, 512, "Secrets Manager name"),
}
# kubernetes.io/docs/concepts/overview/working-with-objects/names: most objects take a DNS-1123
# subdomain (at most 253 characters); Services and Namespaces a DNS-1123 label (at most 63)
K8S_NAME = Limit(("metadata.name",), 1, 253, "Kubernetes object name (DNS-1123 subdomain)")
K8S_LABEL = Limit(("metadata.name",), 1, 63, "Kubernetes Service/Namespace name (DNS-1123 label)")
K8S_LABEL_TYPES = {"kubernetes:core/v1:Service", "kubernetes:core/v1:Namespace"}
# no program creates one today; the row is there for when one does
NOT_RENDERED = {"aws:iam/policy:Policy"}


def limit_of(resource: RenderedResource) -> Limit | None:
    if resource.type in LIMITS:
        return LIMITS[resource.type]
    if resource.type in K8S_LABEL_TYPES:
        return K8S_LABEL
    if resource.type.startswith("kubernetes:") and resource.custom:
        if resource.type.startswith("kubernetes:helm.sh/"):
            return None  # a Helm release, not an object of the API
        return K8S_NAME
    return None


def _field(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def cloud_name(resource: RenderedResource, limit: Limit) -> str:
    for path in limit.fields:
        value = _field(resource.inputs, path)
        if isinstance(value, str) and value:
            return value
    # auto-named: the longest name Pulumi may give it
    return resource.name + "x" * AUTONAME_SUFFIX


def name_problems(program: str, resources: list[RenderedResource]) -> list[str]:
    problems = []
    for resource in resources:
        limit = limit_of(resource)
        if limit is None:
            continue
        name = cloud_name(resource, limit)
        if not limit.low <= len(name) <= limit.high:
            problems.append(
                f"{program}: {resource.type} {resource.name}: {name!r} has {len(name)} characters; "
                f"{limit.source} takes {limit.low}-{limit.high}"
            )
        elif limit is K8S_LABEL and not DNS_LABEL.fullmatch(name):
            problems.append(f"{program}: {resource.type} {resource.name}: {name!r} is no DNS label")
    return problems


@pytest.fixture(scope="module")
def programs() -> dict[str, list[RenderedResource]]:
    from bootstrap_stack.preview import render as render_bootstrap
    from platform_stack.preview import render as render_platform

    rendered = {f"service {s}": render_stack(s, preview=False) for s in ("staging", "prod")}
    rendered |= {f"platform {s}": render_platform(s) for s in ("staging", "prod")}
    rendered["bootstrap main"] = render_bootstrap()
    return rendered


def test_every_cloud_name_fits_its_providers_limit(
    programs: dict[str, list[RenderedResource]],
) -> None:
    problems = [p for name, rs in programs.items() for p in name_problems(name, rs)]
    assert problems == []


def test_every_limited_type_is_checked_on_a_rendered_resource(
    programs: dict[str, list[RenderedResource]],
) -> None:
    """The table is about what the programs create: a row no resource matches checks nothing."""
    seen = {r.type for rs in programs.values() for r in rs}
    assert set(LIMITS) - NOT_RENDERED <= seen, set(LIMITS) - NOT_RENDERED - seen
    assert seen >= K8S_LABEL_TYPES


def _resource(typ: str, inputs: dict[str, Any], name: str = "flowchat-x") -> RenderedResource:
    return RenderedResource(
        type=typ, name=name, inputs=inputs, urn=f"urn:pulumi:s::p::{typ}::{name}"
    )


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            _resource("azure-native:keyvault:Vault", {"vaultName": "kv-flowchat-staging-deploy"}),
            "'kv-flowchat-staging-deploy' has 26 characters; Key Vault name takes 3-24",
        ),
        (
            _resource("aws:iam/role:Role", {"name": "flowchat-prod-" + "r" * 51}),
            "has 65 characters; IAM role name takes 1-64",
        ),
        (  # auto-named: logical name + the suffix
            _resource("aws:iam/role:Role", {}, name="r" * 56),
            "has 65 characters; IAM role name takes 1-64",
        ),
        (
            _resource("kubernetes:core/v1:Service", {"metadata": {"name": "s" * 64}}),
            "has 64 characters; Kubernetes Service/Namespace name (DNS-1123 label) takes 1-63",
        ),
        (
            _resource("kubernetes:core/v1:Namespace", {"metadata": {"name": "Flowchat_Staging"}}),
            "'Flowchat_Staging' is no DNS label",
        ),
        (
            _resource("kubernetes:apps/v1:Deployment", {"metadata": {"name": "d" * 254}}),
            "has 254 characters; Kubernetes object name (DNS-1123 subdomain) takes 1-253",
        ),
        (
            _resource(
                "azure-native:managedidentity:FederatedIdentityCredential",
                {"federatedIdentityCredentialResourceName": "gh"},
            ),
            "'gh' has 2 characters; federated credential name takes 3-120",
        ),
    ],
)
def test_a_name_out_of_its_limit_is_named(resource: RenderedResource, expected: str) -> None:
    (problem,) = name_problems("synthetic", [resource])
    assert expected in problem
    assert problem.startswith(f"synthetic: {resource.type} {resource.name}: ")
