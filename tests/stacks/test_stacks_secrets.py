"""stacks/secrets.py: secret-manager entries per contract, delivered through External Secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stacks_testlib import CLOUD_OVERRIDES, COMBOS, Rendered, render_components

from app.contracts import (
    EXTERNAL_SECRET,
    EXTERNAL_SECRETS_API,
    EXTERNAL_SECRETS_GROUP,
    RESTARTED_AT_ANNOTATION,
    SECRET_PLACEHOLDER,
    STACK_SECRET_KEYS,
    key_vault_name,
    secret_entry_name,
)
from stacks import render


@pytest.fixture(params=COMBOS, ids=[f"{s}-{c}" for s, c in COMBOS])
def stack(request: pytest.FixtureRequest, rendered: dict) -> Rendered:
    return rendered[request.param]


def test_aws_entries_are_named_per_contract_and_carry_no_value(rendered: dict) -> None:
    for stack in ("staging", "prod"):
        r = rendered[(stack, "aws")]
        names = sorted(s.inputs["name"] for s in r.of_type("secretsmanager/secret:Secret"))
        assert names == sorted(secret_entry_name("aws", stack, k) for k in STACK_SECRET_KEYS)
        assert f"flowchat/{stack}/FLOW_AGENT_SECRET" in names
        assert f"flowchat/{stack}/API_KEYS" in names and f"flowchat/{stack}/REDIS_PASSWORD" in names
        assert not r.of_type(":SecretVersion")  # rotation writes every version
        assert not r.of_type("keyvault:")


def test_azure_vault_is_rbac_and_pulumi_creates_no_entry(rendered: dict) -> None:
    """Rotation creates the Key Vault entries with their first real value (data plane)."""
    for stack in ("staging", "prod"):
        r = rendered[(stack, "azure")]
        (vault,) = r.of_type("keyvault:Vault")
        assert vault.inputs["vaultName"] == key_vault_name(stack)
        assert vault.inputs["properties"]["enableRbacAuthorization"] is True
        assert not r.of_type("keyvault:Secret")
        assert not r.of_type("secretsmanager/")


@pytest.mark.parametrize("stack_name", ["staging", "a-very-long-stack-name-for-a-vault"])
def test_vault_name_is_valid_after_truncation(stack_name: str) -> None:
    name = key_vault_name(stack_name)
    assert 3 <= len(name) <= 24
    assert name[0].isalpha() and name[-1].isalnum() and "--" not in name


def test_external_secret_covers_every_secret_key(stack: Rendered) -> None:
    external = stack.manifest("ExternalSecret", EXTERNAL_SECRET)
    assert external["apiVersion"] == "external-secrets.io/v1"
    spec = external["spec"]
    assert spec["target"]["name"] == EXTERNAL_SECRET
    assert spec["refreshInterval"] == "1h"
    mapping = {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
    assert mapping == {k: secret_entry_name(stack.cloud, stack.stack, k) for k in STACK_SECRET_KEYS}
    assert external["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    store = stack.manifest("SecretStore", spec["secretStoreRef"]["name"])
    provider = store["spec"]["provider"]
    if stack.cloud == "azure":
        assert (
            provider["azurekv"]["vaultUrl"]
            == f"https://{key_vault_name(stack.stack)}.vault.azure.net"
        )
    else:
        assert provider["aws"] == {
            "service": "SecretsManager",
            "region": "eu-central-1",
            "auth": {"jwt": {"serviceAccountRef": {"name": "flowchat-external-secrets"}}},
        }


def test_no_literal_secret_value_in_any_input(stack: Rendered) -> None:
    text = json.dumps([r.inputs for r in stack.resources])
    assert "placeholder: run ops.rotate_credentials" not in text
    # the one Secret the stack writes is the registry pull secret, whose value stays secret
    secrets = [m for m in stack.manifests() if m["kind"] == "Secret"]
    assert [m["metadata"]["name"] for m in secrets] == ["flowchat-registry"]
    assert secrets[0]["stringData"] == {".dockerconfigjson": "[secret]"}


def test_children_are_parented_to_their_components(stack: Rendered) -> None:
    components = {r.urn: r.type for r in stack.resources if r.type.startswith("flowchat:stacks:")}
    assert set(components.values()) >= {
        "flowchat:stacks:KubeNamespace",
        "flowchat:stacks:Secrets",
        "flowchat:stacks:Service",
    }
    for r in stack.resources:
        if not r.type.startswith(("flowchat:", "pulumi:providers:")):
            assert r.parent_urn in components, (r.type, r.name, r.parent_urn)


# Variants that change everything else about the entries: tags and descriptions (stack name),
# the vault (existing vs created), the region (replaces every AWS secret), the identity path.
VALUE_VARIANTS = {
    "azure": [
        {},
        {"azure.createVault": "false", "azure.vaultName": "kv-existing-1"},
        {"azure.location": "northeurope"},
        {"azure.workloadIdentityClientId": "existing-client"},
    ],
    "aws": [{}, {"aws.region": "us-east-1"}, {"aws.roleArn": "arn:aws:iam::1:role/existing"}],
}


@pytest.mark.parametrize(
    ("cloud", "variant"),
    [(c, v) for c, variants in VALUE_VARIANTS.items() for v in variants],
    ids=lambda v: str(v) if isinstance(v, dict) else v,
)
def test_no_secret_value_ever_flows_through_pulumi(
    cloud: str, variant: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 5: the planned inputs carry no secret value at all (rendered with secrets
    revealed), so no change to tags, content type, vault or region, and no replacement, can
    resend a placeholder over a value rotation wrote."""
    real = render.plain
    revealed: list[object] = []

    def revealing(value: object) -> object:
        if isinstance(value, dict) and value.get(render._SIG) == render._SECRET_SIG:
            revealed.append(real(value.get("value")))
        return real(value)

    monkeypatch.setattr(render, "plain", revealing)
    for stack in ("staging", "prod"):
        resources = render_components(stack, {**CLOUD_OVERRIDES[cloud], **variant})
        types = {r.type for r in resources}
        assert not {t for t in types if t.endswith((":SecretVersion", "keyvault:Secret"))}
        text = json.dumps([r.inputs for r in resources])
        for field in ('"secretString"', '"secretBinary"', '"value": "placeholder'):
            assert field not in text
        assert SECRET_PLACEHOLDER not in text
    assert SECRET_PLACEHOLDER not in json.dumps(revealed, default=str)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value",
    [SECRET_PLACEHOLDER, EXTERNAL_SECRETS_API, EXTERNAL_SECRETS_GROUP, RESTARTED_AT_ANNOTATION],
)
def test_shared_names_are_spelled_only_in_contracts(value: str) -> None:
    """stacks/, ops/ and policies/ import these from app.contracts; a second spelling drifts."""
    spelled = [
        str(path.relative_to(REPO))
        for folder in ("stacks", "ops", "policies")
        for path in sorted((REPO / folder).rglob("*.py"))
        if f'"{value}"' in path.read_text() or f"'{value}'" in path.read_text()
    ]
    assert spelled == []


def test_the_aws_external_secrets_role_carries_the_bootstrap_boundary(rendered: dict) -> None:
    """Issue 19 item 5: the deploy role may write this role only with bootstrap's boundary
    attached (bootstrap_stack.aws.deploy_policy), so the role must be created with it."""
    from bootstrap_stack.preview import render as render_bootstrap
    from stacktools.render import MOCK_AWS_ACCOUNT

    (boundary,) = [r.inputs for r in render_bootstrap() if r.type == "aws:iam/policy:Policy"]
    (role,) = rendered[("prod", "aws")].of_type("iam/role:Role")
    assert role.inputs["permissionsBoundary"] == (
        f"arn:aws:iam::{MOCK_AWS_ACCOUNT}:policy/{boundary['name']}"
    )
