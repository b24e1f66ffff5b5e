"""One owner per cloud resource: no two programs (platform staging/prod, bootstrap) create a
resource with the same cloud name, so neither `pulumi up` fails on the other's resource and
neither `pulumi destroy` deletes it (issue 19: both created rg-flowchat-staging)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest

from bootstrap_stack import trust
from bootstrap_stack.preview import render as render_bootstrap
from platform_stack.preview import render as render_platform
from platform_stack.settings import parse_settings, stack_file_config
from stacktools.render import MOCK_SUBSCRIPTION, RenderedResource

_NAME_KEYS = ("resourceName", "name")


def cloud_name(resource: RenderedResource) -> tuple[str, str] | None:
    """(type, the name the resource has in its cloud) of a provider resource, None when the
    provider names it (no name input) or it is not a cloud resource. Kubernetes objects live in
    each platform's own cluster; bootstrap's (in staging's) are compared by the test below."""
    if not resource.custom or resource.type.startswith(("pulumi:", "kubernetes:")):
        return None
    inputs: dict[str, Any] = resource.inputs
    kind = resource.type.rsplit(":", 1)[-1]
    own = kind[:1].lower() + kind[1:]
    # azure-native names its resources <type>Name (resourceGroupName on a ResourceGroup, vaultName
    # on a Vault) or <type>ResourceName; resourceName / name elsewhere
    for key in (f"{own}Name", f"{own}ResourceName", *_NAME_KEYS):
        if isinstance(inputs.get(key), str) and inputs[key]:
            return resource.type, inputs[key]
    return None


@pytest.fixture(scope="module")
def programs() -> dict[str, list[RenderedResource]]:
    return {
        "platform/staging": render_platform("staging"),
        "platform/prod": render_platform("prod"),
        "bootstrap/main": render_bootstrap(),
    }


def test_no_two_programs_create_a_resource_with_the_same_cloud_name(programs: dict) -> None:
    # bootstrap's Kubernetes objects (the AKS deploy identity's bindings) are in the staging
    # cluster: none may be one the staging platform creates
    def kube_names(resources: list[RenderedResource]) -> set[tuple[str, str, str]]:
        return {
            (r.type, r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"])
            for r in resources
            if r.type.startswith("kubernetes:") and "metadata" in r.inputs
        }

    bootstrap_kube = kube_names(programs["bootstrap/main"])
    assert bootstrap_kube  # the check is not vacuous
    assert not bootstrap_kube & kube_names(programs["platform/staging"])
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for program, resources in programs.items():
        for resource in resources:
            name = cloud_name(resource)
            if name is not None:
                owners[name].add(program)
    shared = {name: sorted(p) for name, p in owners.items() if len(p) > 1}
    assert shared == {}
    # the check sees the groups at all (a renamed input would make it vacuous)
    groups = [n for (t, n) in owners if t == "azure-native:resources:ResourceGroup"]
    assert "rg-flowchat-staging" in groups


def test_bootstrap_grants_on_the_platforms_group_it_reads(programs: dict) -> None:
    """The deploy identity's rights are on the group the platform owns (the cluster and the
    service's vault live there), addressed by id, not by a second ResourceGroup resource."""
    bootstrap = programs["bootstrap/main"]
    (platform_group,) = [
        r.inputs["resourceGroupName"]
        for r in programs["platform/staging"]
        if r.type == "azure-native:resources:ResourceGroup"
    ]
    scopes = {
        str(r.inputs["scope"])
        for r in bootstrap
        if r.type == "azure-native:authorization:RoleAssignment"
        and "KeyVault" not in str(r.inputs["scope"])
    }
    # the group itself, or a resource in it (the cluster, its namespaces)
    in_group = re.compile(rf"/subscriptions/[^/]+/resourceGroups/{platform_group}(/providers/.+)?")
    assert scopes and all(in_group.fullmatch(s) for s in scopes), scopes


def test_the_aks_writer_role_is_granted_only_on_the_service_namespaces(programs: dict) -> None:
    """AKS RBAC Writer writes in every namespace of its scope: on the group or the cluster it
    reaches kube-system. One assignment per service namespace of the platform's cluster, scoped
    as AKS documents namespace assignments (`--scope $AKS_ID/namespaces/<namespace>`, AKS_ID
    being the cluster's ARM id), and none anywhere else."""
    platform = programs["platform/staging"]
    (group,) = [
        r.inputs["resourceGroupName"]
        for r in platform
        if r.type == "azure-native:resources:ResourceGroup"
    ]
    (cluster,) = [
        r.inputs["resourceName"]
        for r in platform
        if r.type == "azure-native:containerservice:ManagedCluster"
    ]
    namespaces = parse_settings("staging", stack_file_config("staging")).service_namespaces
    cluster_id = (
        f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{cluster}"
    )
    writer_scopes = sorted(
        str(r.inputs["scope"])
        for r in programs["bootstrap/main"]
        if r.type == "azure-native:authorization:RoleAssignment"
        and str(r.inputs["roleDefinitionId"]).endswith(f"/{trust.AKS_RBAC_WRITER}")
    )
    assert namespaces  # not vacuous
    assert writer_scopes == sorted(f"{cluster_id}/namespaces/{ns}" for ns in namespaces)
