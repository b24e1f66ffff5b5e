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
    SECRET_KEYS,
    SECRET_PLACEHOLDER,
    key_vault_name,
    secret_entry_name,
)
from stacks import render


@pytest.fixture(params=COMBOS, ids=[f"{s}-{c}" for s, c in COMBOS])
def stack(request: pytest.FixtureRequest, rendered: dict) -> Rendered:
    return rendered[request.param]


def test_aws_entries_are_named_per_contract(rendered: dict) -> None:
    for stack in ("staging", "prod"):
        r = rendered[(stack, "aws")]
        names = sorted(s.inputs["name"] for s in r.of_type(":Secret"))
        assert names == sorted(secret_entry_name("aws", stack, k) for k in SECRET_KEYS)
        assert f"flowchat/{stack}/FLOW_AGENT_SECRET" in names
        versions = r.of_type(":SecretVersion")
        assert len(versions) == len(SECRET_KEYS)
        assert {v.inputs["secretString"] for v in versions} == {"[secret]"}
        assert not r.of_type("keyvault:Secret")


def test_azure_entries_are_named_per_contract_in_the_stack_vault(rendered: dict) -> None:
    for stack in ("staging", "prod"):
        r = rendered[(stack, "azure")]
        (vault,) = r.of_type("keyvault:Vault")
        assert vault.inputs["vaultName"] == key_vault_name(stack)
        assert vault.inputs["properties"]["enableRbacAuthorization"] is True
        secrets = r.of_type("keyvault:Secret")
        assert sorted(s.inputs["secretName"] for s in secrets) == sorted(
            secret_entry_name("azure", stack, k) for k in SECRET_KEYS
        )
        assert {s.inputs["vaultName"] for s in secrets} == {key_vault_name(stack)}
        assert {s.inputs["properties"]["value"] for s in secrets} == {"[secret]"}
        assert not r.of_type("secretsmanager/secret:Secret")


def test_external_secret_covers_every_secret_key(stack: Rendered) -> None:
    external = stack.manifest("ExternalSecret", EXTERNAL_SECRET)
    assert external["apiVersion"] == "external-secrets.io/v1"
    spec = external["spec"]
    assert spec["target"]["name"] == EXTERNAL_SECRET
    assert spec["refreshInterval"] == "1h"
    mapping = {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
    assert mapping == {k: secret_entry_name(stack.cloud, stack.stack, k) for k in SECRET_KEYS}
    store = stack.manifest("SecretStore", spec["secretStoreRef"]["name"])
    provider = store["spec"]["provider"]
    if stack.cloud == "azure":
        assert (
            provider["azurekv"]["vaultUrl"]
            == f"https://{key_vault_name(stack.stack)}.vault.azure.net"
        )
    else:
        assert provider["aws"] == {"service": "SecretsManager", "region": "eu-central-1"} | (
            {"auth": provider["aws"]["auth"]} if "auth" in provider["aws"] else {}
        )


def test_no_literal_secret_value_in_any_input(stack: Rendered) -> None:
    text = json.dumps([r.inputs for r in stack.resources])
    assert "placeholder: run ops.rotate_credentials" not in text
    assert not [m for m in stack.manifests() if m["kind"] == "Secret"]


def test_children_are_parented_to_their_components(stack: Rendered) -> None:
    components = {r.urn: r.type for r in stack.resources if r.type.startswith("flowchat:stacks:")}
    assert set(components.values()) >= {
        "flowchat:stacks:KubeNamespace",
        "flowchat:stacks:Secrets",
        "flowchat:stacks:Service",
    }
    for r in stack.resources:
        if not r.type.startswith("flowchat:"):
            assert r.parent_urn in components, (r.type, r.name, r.parent_urn)


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_entries_start_with_the_contract_placeholder(
    cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The initial value is app.contracts.SECRET_PLACEHOLDER, the one the service refuses as an
    admin token (rendered with secret values revealed)."""
    real = render.plain

    def revealing(value: object) -> object:
        if isinstance(value, dict) and value.get(render._SIG) == render._SECRET_SIG:
            return {"secret": real(value.get("value"))}
        return real(value)

    monkeypatch.setattr(render, "plain", revealing)
    resources = render_components("staging", CLOUD_OVERRIDES[cloud])
    if cloud == "aws":
        values = [r.inputs["secretString"] for r in resources if r.type.endswith(":SecretVersion")]
    else:
        values = [
            r.inputs["properties"]["value"] for r in resources if r.type.endswith("keyvault:Secret")
        ]
    assert len(values) == len(SECRET_KEYS)
    assert values == [{"secret": SECRET_PLACEHOLDER}] * len(SECRET_KEYS)


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
