"""The first `pulumi up` of each stack, fed only what the workflow step and ESC deliver.

Guards stacktools.first_run and stacktools.workflow_model (issue 9, items 1-4 and 7): providers
that fail like the real ones without their inputs, the committed workflows read step by step,
and, for each item, a negative case that removes its fix and must fail.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from stacks_testlib import ROOT

from bootstrap_stack import trust
from bootstrap_stack.preview import render as render_bootstrap
from stacks import esc
from stacks.config import esc_id_keys
from stacks.platform_ref import OUTPUT_NAMES
from stacks.render import RenderedResource, load_stack_file
from stacktools import render as render_module
from stacktools.first_run import (
    FAILS_WITHOUT,
    FirstRun,
    bootstrap_environments,
    default_provider_problems,
    esc_definition_path,
    first_run,
    rollout_wait_problems,
    secret_access_problems,
)
from stacktools.render import mock_outputs
from stacktools.workflow_model import KUBELOGIN, pulumi_steps

STACK_CLOUDS = {"staging": "azure", "prod": "aws"}
WORKFLOWS = ROOT / ".github" / "workflows"
CONTRACT = Path(__file__).parent / "data" / "deploy-contract.yml"


def _committed_steps() -> list[Any]:
    steps = []
    for name in ("deploy.yml", "preview.yml", "drift.yml"):
        path = WORKFLOWS / name
        if path.exists():
            steps += pulumi_steps(path, STACK_CLOUDS)
    return steps


COMMITTED = _committed_steps()


def test_stack_files_name_the_cloud_the_test_assumes() -> None:
    for stack, cloud in STACK_CLOUDS.items():
        assert load_stack_file(stack)["config"]["flowchat:cloud"] == cloud


def test_deploy_runs_pulumi_up_for_every_stack() -> None:
    ups = {s.stacks[0] for s in COMMITTED if s.workflow == "deploy.yml" and s.command == "up"}
    assert ups == set(STACK_CLOUDS)


@pytest.mark.parametrize("step", COMMITTED, ids=lambda s: f"{s.label}-{s.stacks[0]}")
def test_committed_workflow_step_delivers_a_working_first_run(step: Any) -> None:
    """Fails against a deploy.yml whose cluster credentials come after `pulumi up`, or without a
    Pulumi Cloud OIDC login (the ESC environment is never opened)."""
    result = first_run(step.stacks[0], step)
    assert not result.problems, "\n".join(result.problems)


# --- the contract, and each item's fix removed -------------------------------------------------
def _contract() -> dict[str, Any]:
    return yaml.safe_load(CONTRACT.read_text())


def _run_contract(stack: str, workflow: dict[str, Any], tmp_path: Path, **kw: Any) -> FirstRun:
    path = tmp_path / "workflow.yml"
    path.write_text(yaml.safe_dump(workflow))
    (step,) = [s for s in pulumi_steps(path, STACK_CLOUDS) if s.stacks == (stack,)]
    return first_run(stack, step, **kw)


@pytest.fixture(scope="module")
def contract_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FirstRun]:
    tmp = tmp_path_factory.mktemp("contract")
    return {stack: _run_contract(stack, _contract(), tmp) for stack in STACK_CLOUDS}


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_contract_workflow_first_run_goes_through(contract_runs: dict, stack: str) -> None:
    result = contract_runs[stack]
    assert not result.problems, "\n".join(result.problems)
    kinds = {r.inputs.get("kind") for r in result.resources}
    assert {"Deployment", "ExternalSecret", "SecretStore"} <= kinds


def _drop_step(workflow: dict, job: str, uses_or_name: str) -> dict:
    out = copy.deepcopy(workflow)
    steps = out["jobs"][job]["steps"]
    out["jobs"][job]["steps"] = [
        s for s in steps if uses_or_name not in str(s.get("uses", "")) + str(s.get("name", ""))
    ]
    assert len(out["jobs"][job]["steps"]) == len(steps) - 1, uses_or_name
    return out


def _move_after_pulumi(workflow: dict, job: str, name: str) -> dict:
    out = copy.deepcopy(workflow)
    steps = out["jobs"][job]["steps"]
    (moved,) = [s for s in steps if s.get("name") == name]
    steps.remove(moved)
    steps.append(moved)
    return out


def _drop_job_env(workflow: dict, job: str, var: str) -> dict:
    out = copy.deepcopy(workflow)
    del out["jobs"][job]["env"][var]
    return out


def _drop_id_token(workflow: dict, job: str) -> dict:
    out = copy.deepcopy(workflow)
    del out["jobs"][job]["permissions"]["id-token"]
    return out


STAGING, PROD = "up-staging", "up-prod"
WORKFLOW_BREAKS = {
    # item 1: no Pulumi Cloud login -> the ESC environment never opens -> secret config missing
    "staging-no-pulumi-oidc": (
        "staging",
        lambda w: _drop_step(w, STAGING, "pulumi/auth-actions"),
        "no pulumi/auth-actions",
    ),
    "prod-no-pulumi-oidc": (
        "prod",
        lambda w: _drop_step(w, PROD, "pulumi/auth-actions"),
        "no pulumi/auth-actions",
    ),
    # item 2: no cluster at pulumi up time
    "staging-no-aks-context": (
        "staging",
        lambda w: _drop_step(w, STAGING, "aks-set-context"),
        "no kubeconfig",
    ),
    "staging-no-kubelogin": (
        "staging",
        lambda w: _drop_step(w, STAGING, "use-kubelogin"),
        "needs kubelogin",
    ),
    "staging-credentials-after-up": (
        "staging",
        lambda w: _move_after_pulumi(w, STAGING, "Cluster credentials"),
        "no kubeconfig",
    ),
    "prod-no-update-kubeconfig": (
        "prod",
        lambda w: _drop_step(w, PROD, "Cluster credentials"),
        "no kubeconfig",
    ),
    "prod-credentials-after-up": (
        "prod",
        lambda w: _move_after_pulumi(w, PROD, "Cluster credentials"),
        "no kubeconfig",
    ),
    # cloud logins: Azure without subscription / OIDC, AWS without credentials
    "staging-no-subscription": (
        "staging",
        lambda w: _drop_job_env(w, STAGING, "ARM_SUBSCRIPTION_ID"),
        "without a subscription",
    ),
    "staging-no-arm-oidc": (
        "staging",
        lambda w: _drop_job_env(w, STAGING, "ARM_USE_OIDC"),
        "azure-native provider has no credentials",
    ),
    "staging-no-id-token": (
        "staging",
        lambda w: _drop_id_token(w, STAGING),
        "needs `id-token: write`",
    ),
    "prod-no-aws-login": (
        "prod",
        lambda w: _drop_step(w, PROD, "configure-aws-credentials"),
        "without AWS credentials",
    ),
}


@pytest.mark.parametrize("case", list(WORKFLOW_BREAKS))
def test_first_run_fails_without_each_workflow_input(case: str, tmp_path: Path) -> None:
    stack, mutate, expected = WORKFLOW_BREAKS[case]
    result = _run_contract(stack, mutate(_contract()), tmp_path)
    assert any(expected in p for p in result.problems), result.problems


def _without_config(stack: str, key: str) -> dict:
    doc = copy.deepcopy(load_stack_file(stack))
    del doc["config"][key]
    return doc


def _esc_without(stack: str, key: str) -> dict[str, dict]:
    (ref,) = load_stack_file(stack)["environment"]
    doc = yaml.safe_load(esc_definition_path(ref).read_text())
    del doc["values"]["pulumiConfig"][key]
    return {ref: doc}


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-esc-environment", "config: flowchat:alerting"),  # item 1
        ("esc-without-alerting-url", "config: flowchat:alerting"),  # item 1
        ("esc-without-grafana-auth", "grafana provider without auth"),  # item 3
        ("no-grafana-url", "grafana provider without url"),  # item 3
    ],
)
def test_first_run_fails_without_each_stack_input(
    stack: str, case: str, expected: str, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {}
    if case == "no-esc-environment":
        doc = copy.deepcopy(load_stack_file(stack))
        del doc["environment"]
        kw["stack_doc"] = doc
    elif case == "esc-without-alerting-url":
        kw["esc_docs"] = _esc_without(stack, "flowchat:alertingUrl")
    elif case == "esc-without-grafana-auth":
        kw["esc_docs"] = _esc_without(stack, "flowchat:grafanaAuth")
    else:
        kw["stack_doc"] = _without_config(stack, "flowchat:grafana")
    result = _run_contract(stack, _contract(), tmp_path, **kw)
    assert any(expected in p for p in result.problems), result.problems


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_stack_files_disable_default_providers_and_attach_a_committed_esc(stack: str) -> None:
    doc = load_stack_file(stack)
    disabled = doc["config"]["pulumi:disable-default-providers"]
    assert {"kubernetes", "grafana"} <= set(disabled)
    assert {"azure-native", "aws"} <= set(disabled)
    (ref,) = doc["environment"]
    esc = yaml.safe_load(esc_definition_path(ref).read_text())
    ids = {f"flowchat:{k}" for k in esc_id_keys(STACK_CLOUDS[stack])}
    chat = {"flowchat:alertingChatUrl"} if doc["config"]["flowchat:alerting"].get("chat") else set()
    assert set(esc["values"]["pulumiConfig"]) == {
        "flowchat:alertingUrl",
        *chat,
        "flowchat:grafanaAuth",
        "flowchat:registryAuth",
        *ids,
    }


# --- issue 19: the ids ESC hands over come from bootstrap, none is committed -------------------
def _bootstrap_ids() -> list[tuple[str, str]]:
    out = []
    for stack in STACK_CLOUDS:
        values = bootstrap_environments()[esc.ids_environment(stack)]["values"][esc.IDS]
        out += [(stack, name) for name in sorted(values)]
    return out


def test_the_committed_stack_files_hold_no_id_the_bootstrap_creates() -> None:
    for stack, cloud in STACK_CLOUDS.items():
        config = load_stack_file(stack)["config"]
        for obj, field in esc_id_keys(cloud).values():
            assert field not in config.get(f"flowchat:{obj}", {}), (stack, obj, field)


@pytest.mark.parametrize(("stack", "name"), _bootstrap_ids())
def test_dropping_any_bootstrap_id_fails_the_first_run_naming_it(
    stack: str, name: str, tmp_path: Path
) -> None:
    """The first run is fed the ids environment bootstrap writes; without one of its ids the
    committed ESC definition does not open (and the service misses what it hands over)."""
    imported = copy.deepcopy(bootstrap_environments())
    del imported[esc.ids_environment(stack)]["values"][esc.IDS][name]
    result = _run_contract(stack, _contract(), tmp_path, imported=imported)
    assert any(f"bootstrap output ids.{name} is missing" in p for p in result.problems), (
        result.problems
    )


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_the_service_gets_the_bootstrap_ids_through_esc(contract_runs: dict, stack: str) -> None:
    ids = bootstrap_environments()[esc.ids_environment(stack)]["values"][esc.IDS]
    rendered = json.dumps([r.inputs for r in contract_runs[stack].resources])
    config = esc.load_definition(stack)["values"]["pulumiConfig"]
    for key in esc_id_keys(STACK_CLOUDS[stack]):
        value = esc.resolve_ids(config[f"flowchat:{key}"], ids)
        assert json.dumps(value)[1:-1] in rendered, (key, value)  # reaches the resources


# --- the fake providers fail like the real ones -------------------------------------------------
@pytest.mark.parametrize(
    ("typ", "inputs", "env", "ok"),
    [
        ("pulumi:providers:github", {"owner": "o"}, {}, False),
        ("pulumi:providers:github", {"owner": "o"}, {"GITHUB_TOKEN": "t"}, True),
        ("pulumi:providers:github", {"token": "t"}, {}, False),
        ("pulumi:providers:pulumiservice", {}, {}, False),
        ("pulumi:providers:pulumiservice", {}, {"PULUMI_ACCESS_TOKEN": "t"}, True),
        ("pulumi:providers:pulumiservice", {"accessToken": "t"}, {}, True),
        ("pulumi:providers:aws", {"region": "r"}, {"AWS_PROFILE": "admin"}, True),
    ],
)
def test_fake_bootstrap_providers_fail_without_their_token(
    typ: str, inputs: dict, env: dict, ok: bool
) -> None:
    problem = FAILS_WITHOUT[typ](inputs, env, set(), "azure")
    assert (problem == "") is ok, problem


@pytest.mark.parametrize(
    ("typ", "inputs", "env", "tools", "cloud", "ok"),
    [
        ("pulumi:providers:kubernetes", {}, {}, set(), "aws", False),
        ("pulumi:providers:kubernetes", {}, {"KUBECONFIG": "k"}, set(), "aws", True),
        ("pulumi:providers:kubernetes", {}, {"KUBECONFIG": "k"}, set(), "azure", False),
        ("pulumi:providers:kubernetes", {}, {"KUBECONFIG": "k"}, {KUBELOGIN}, "azure", True),
        ("pulumi:providers:kubernetes", {"kubeconfig": "x"}, {}, set(), "aws", True),
        ("pulumi:providers:grafana", {"url": "https://g"}, {}, set(), "aws", False),
        ("pulumi:providers:grafana", {"auth": "t"}, {}, set(), "aws", False),
        ("pulumi:providers:grafana", {"url": "https://g", "auth": "t"}, {}, set(), "aws", True),
        ("pulumi:providers:aws", {}, {"AWS_ACCESS_KEY_ID": "a"}, set(), "aws", False),
        ("pulumi:providers:aws", {"region": "eu-west-1"}, {}, set(), "aws", False),
        (
            "pulumi:providers:aws",
            {"region": "eu-west-1"},
            {"AWS_ACCESS_KEY_ID": "a"},
            set(),
            "aws",
            True,
        ),
        (
            "pulumi:providers:azure-native",
            {},
            {
                "ARM_USE_OIDC": "true",
                "ARM_CLIENT_ID": "c",
                "ARM_TENANT_ID": "t",
                "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
            },
            set(),
            "azure",
            False,
        ),
        (
            "pulumi:providers:azure-native",
            {},
            {
                "ARM_USE_OIDC": "true",
                "ARM_CLIENT_ID": "c",
                "ARM_TENANT_ID": "t",
                "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
                "ARM_SUBSCRIPTION_ID": "s",
            },
            set(),
            "azure",
            True,
        ),
    ],
)
def test_fake_providers_fail_like_the_real_ones(
    typ: str, inputs: dict, env: dict, tools: set, cloud: str, ok: bool
) -> None:
    problem = FAILS_WITHOUT[typ](inputs, env, tools, cloud)
    assert (problem == "") is ok, problem


# --- item 4 (identities, grants) and item 7 (rollout waits), each fix removed ------------------
def _without(resources: list[RenderedResource], typ: str, name_part: str = "") -> list:
    kept = [r for r in resources if not (r.type == typ and name_part in r.name)]
    assert len(kept) < len(resources), (typ, name_part)
    return kept


@pytest.mark.parametrize(
    ("stack", "typ", "name_part"),
    [
        ("staging", "azure-native:managedidentity:UserAssignedIdentity", ""),
        ("staging", "azure-native:managedidentity:FederatedIdentityCredential", ""),
        ("staging", "azure-native:authorization:RoleAssignment", "reader"),
        ("staging", "azure-native:authorization:RoleAssignment", "rotation-writer"),
        ("prod", "aws:iam/role:Role", ""),
        ("prod", "aws:iam/rolePolicy:RolePolicy", ""),
    ],
)
def test_secret_access_fails_without_each_identity_resource(
    contract_runs: dict, stack: str, typ: str, name_part: str
) -> None:
    resources = contract_runs[stack].resources
    assert secret_access_problems(resources, STACK_CLOUDS[stack], stack) == []
    broken = _without(resources, typ, name_part)
    assert secret_access_problems(broken, STACK_CLOUDS[stack], stack)


def _edit_external_secret(resources: list[RenderedResource], **changes: Any) -> list:
    out = []
    for r in resources:
        if r.inputs.get("kind") == "ExternalSecret":
            inputs = copy.deepcopy(r.inputs)
            inputs["metadata"]["annotations"] = changes.get("annotations", {})
            r = r.model_copy(update={"inputs": inputs})
        out.append(r)
    return out


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_rollout_waits_for_the_synced_secret(contract_runs: dict, stack: str) -> None:
    resources = contract_runs[stack].resources
    assert rollout_wait_problems(resources) == []
    assert rollout_wait_problems(_edit_external_secret(resources))  # no waitFor annotation
    no_deps = [
        r.model_copy(update={"dependencies": []}) if r.inputs.get("kind") == "Deployment" else r
        for r in resources
    ]
    assert rollout_wait_problems(no_deps)


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_every_resource_names_its_provider(contract_runs: dict, stack: str) -> None:
    resources = contract_runs[stack].resources
    assert default_provider_problems(resources, [], {"kubernetes"}) == []
    defaulted = [
        r.model_copy(update={"provider": None}) if r.inputs.get("kind") == "Deployment" else r
        for r in resources
    ]
    assert default_provider_problems(defaulted, [], {"kubernetes"})


def test_esc_definitions_hold_no_secret_values() -> None:
    for path in (ROOT / "deploy" / "esc").glob("*.yaml"):
        text = path.read_text()
        assert "fn::secret" not in text, path.name  # values come from the secret manager
        for value in yaml.safe_load(text)["values"]["pulumiConfig"].values():
            assert str(value).startswith("${"), (path.name, value)


# --- issue 19: the service reads only what the platform stack exports ---------------------------
@pytest.mark.parametrize("output", OUTPUT_NAMES)
def test_dropping_any_platform_output_fails_the_first_run_naming_it(
    output: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The StackReference (`require_output`) gets what platform_stack exports minus one."""
    real = render_module.platform_reference_outputs

    def without(reference: str) -> dict:
        outputs = real(reference)
        outputs.pop(output)
        return outputs

    monkeypatch.setattr(render_module, "platform_reference_outputs", without)
    with pytest.raises(Exception, match=output):
        _run_contract("staging", _contract(), tmp_path)


def test_the_stack_files_read_the_platform_stack_not_hand_written_values() -> None:
    for stack in STACK_CLOUDS:
        config = load_stack_file(stack)["config"]
        assert config["flowchat:platform"] == {"stack": f"flowchat-platform/{stack}"}
        for key in ("flowchat:hostname", "flowchat:storageClass", "flowchat:ingressClass"):
            assert key not in config


# --- issue 19: the deploy identity's Kubernetes rights cover what the service creates ----------
@functools.cache
def bootstrap_render() -> list[RenderedResource]:
    return render_bootstrap()


def _cluster_scoped(api_version: str, kind: str) -> bool:
    """From the official client: built-in kinds have create_namespaced_X or only create_X;
    custom kinds are namespaced unless named Cluster* (ClusterIssuer, ClusterSecretStore...)."""
    from kubernetes import client

    group, _, version = api_version.rpartition("/")
    group_name = "".join(
        p.capitalize() for p in (group.removesuffix(".k8s.io") or "core").split(".")
    )
    api = getattr(client, f"{group_name}{version.capitalize()}Api", None)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    if api is not None and hasattr(api, f"create_namespaced_{snake}"):
        return False
    if api is not None and hasattr(api, f"create_{snake}"):
        return True
    return kind.startswith("Cluster")


def _deploy_identity_kube_rights(stack: str) -> tuple[set[str], set[str] | None]:
    """(cluster-scoped kinds it may create, namespaces it may write in; None: every one), read
    from the grants the bootstrap program makes to the identity of the deploy job of `stack`."""
    resources = bootstrap_render()
    cloud = STACK_CLOUDS[stack]
    environment = trust.GITHUB_ENVIRONMENTS["staging" if stack == "staging" else "production"]
    subject = trust.github_subject("ciandt/flowchat", environment)
    kinds: set[str] = set()
    if cloud == "azure":
        (cred,) = [
            r.inputs
            for r in resources
            if r.type.endswith(":FederatedIdentityCredential") and r.inputs["subject"] == subject
        ]
        (identity,) = [
            r
            for r in resources
            if r.type.endswith(":UserAssignedIdentity")
            and r.inputs["resourceName"] == cred["resourceName"]
        ]
        principal = mock_outputs(identity.type, identity.name, identity.inputs)["principalId"]
        grants = [
            (str(r.inputs["roleDefinitionId"]).rsplit("/", 1)[-1], str(r.inputs["scope"]))
            for r in resources
            if r.type.endswith(":RoleAssignment") and r.inputs["principalId"] == principal
        ]
        roles = [role for role, _ in grants]
        kube_roles = [r for r in roles if r in (trust.AKS_RBAC_WRITER, trust.AKS_CLUSTER_USER)]
        assert trust.AKS_RBAC_WRITER in kube_roles, roles
        for role in kube_roles:
            kinds |= trust.KUBE_ROLE_CLUSTER_KINDS[role]
        # the Writer's scopes: `<cluster id>/namespaces/<ns>`, or above one (every namespace)
        writer = [scope for role, scope in grants if role == trust.AKS_RBAC_WRITER]
        namespaces = {s.split("/namespaces/", 1)[1] for s in writer if "/namespaces/" in s}
        return kinds, namespaces if len(namespaces) == len(writer) else None
    (role,) = [
        r
        for r in resources
        if r.type == "aws:iam/role:Role"
        and subject
        in json.loads(r.inputs["assumeRolePolicy"])["Statement"][0]["Condition"][
            "StringEquals"
        ].values()
    ]
    arn = mock_outputs(role.type, role.name, role.inputs)["arn"]
    namespaces: set[str] = set()
    for r in resources:
        if (
            r.type.endswith("accessPolicyAssociation:AccessPolicyAssociation")
            and r.inputs["principalArn"] == arn
        ):
            kinds |= trust.KUBE_ROLE_CLUSTER_KINDS[r.inputs["policyArn"].rsplit("/", 1)[-1]]
            assert r.inputs["accessScope"]["type"] == "namespace"
            namespaces |= set(r.inputs["accessScope"]["namespaces"])
    assert namespaces, f"no EKS access policy for {arn}"
    return kinds, namespaces


def kube_rights_problems(resources: list[RenderedResource], stack: str) -> list[str]:
    kinds, namespaces = _deploy_identity_kube_rights(stack)
    problems = []
    for r in resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm"):
            continue
        kind, api_version = r.inputs.get("kind"), r.inputs.get("apiVersion")
        if not kind or not api_version:
            continue
        if _cluster_scoped(api_version, kind):
            if kind not in kinds:
                problems.append(f"{kind} {r.name} is cluster-scoped: the deploy identity may not")
        elif namespaces is not None:
            namespace = (r.inputs.get("metadata") or {}).get("namespace")
            if namespace not in namespaces:
                problems.append(f"{kind} {r.name} in {namespace}: outside {sorted(namespaces)}")
    return problems


@pytest.mark.parametrize("stack", list(STACK_CLOUDS))
def test_the_deploy_identity_may_create_everything_the_service_creates(
    contract_runs: dict, stack: str
) -> None:
    resources = contract_runs[stack].resources
    assert kube_rights_problems(resources, stack) == []
    # a Namespace (what the service created before the platform did) is refused
    namespace = RenderedResource(
        type="kubernetes:core/v1:Namespace",
        name="flowchat-namespace",
        inputs={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
        urn="urn:x",
    )
    (problem,) = kube_rights_problems([*resources, namespace], stack)
    assert "Namespace flowchat-namespace is cluster-scoped" in problem


def test_the_cluster_scope_reading_follows_the_official_client() -> None:
    assert _cluster_scoped("v1", "Namespace")
    assert _cluster_scoped("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    assert _cluster_scoped("storage.k8s.io/v1", "StorageClass")
    assert _cluster_scoped("cert-manager.io/v1", "ClusterIssuer")
    assert not _cluster_scoped("v1", "ServiceAccount")
    assert not _cluster_scoped("policy/v1", "PodDisruptionBudget")
    assert not _cluster_scoped("networking.k8s.io/v1", "NetworkPolicy")
    assert not _cluster_scoped("external-secrets.io/v1", "ExternalSecret")
