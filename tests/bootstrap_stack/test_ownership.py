"""One owner per cloud resource: no two programs (platform staging/prod, bootstrap) create a
resource with the same cloud name, so neither `pulumi up` fails on the other's resource and
neither `pulumi destroy` deletes it (issue 19: both created rg-flowchat-staging)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from bootstrap_stack.preview import render as render_bootstrap
from platform_stack.preview import render as render_platform
from stacktools.render import RenderedResource

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
    assert scopes and all(s.endswith(f"/resourceGroups/{platform_group}") for s in scopes), scopes
