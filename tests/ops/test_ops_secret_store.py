"""ops.secret_store: AWS Secrets Manager (moto) and Azure Key Vault (SDK over a fake transport)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from ops.secret_store import AwsSecretStore, AzureSecretStore, vault_url_for
from ops.summary import OpsError

NAME = "flowchat/staging/FLOW_AGENT_SECRET"


@pytest.fixture
def sm() -> Any:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=NAME, SecretString="old-secret")
        yield client


def test_aws_write_then_restore_moves_awscurrent_back(sm: Any) -> None:
    store = AwsSecretStore(sm)
    previous = store.read(NAME)
    assert previous.value.get_secret_value() == "old-secret"
    new = store.write(NAME, "new-secret")
    assert new.version != previous.version
    assert sm.get_secret_value(SecretId=NAME)["SecretString"] == "new-secret"
    store.restore(previous, new)
    current = sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")
    assert current["SecretString"] == "old-secret"
    assert current["VersionId"] == previous.version


def test_aws_missing_entry_is_one_clear_sentence(sm: Any) -> None:
    with pytest.raises(OpsError, match="does not exist in AWS Secrets Manager"):
        AwsSecretStore(sm).read("flowchat/staging/FLOW_AGENT")


def test_secret_values_never_in_repr(sm: Any) -> None:
    version = AwsSecretStore(sm).read(NAME)
    assert "old-secret" not in repr(version)
    assert "old-secret" not in str(version)


def test_azure_write_then_restore(fake_vault: Any, vault_client: Any) -> None:
    first = fake_vault.seed("flow-agent-secret", "old-secret")
    store = AzureSecretStore(vault_client)
    previous = store.read("flow-agent-secret")
    assert previous.version == first
    assert previous.value.get_secret_value() == "old-secret"
    new = store.write("flow-agent-secret", "new-secret")
    assert fake_vault.current("flow-agent-secret") == "new-secret"
    store.restore(previous, new)
    assert fake_vault.current("flow-agent-secret") == "old-secret"
    assert fake_vault.enabled("flow-agent-secret", new.version) is False
    # the SDK went through Key Vault's challenge, then sent authenticated requests
    assert [m for m, _ in fake_vault.requests].count("PUT") >= 2


def test_azure_missing_entry(vault_client: Any) -> None:
    with pytest.raises(OpsError, match="flow-tenant does not exist in Azure Key Vault"):
        AzureSecretStore(vault_client).read("flow-tenant")


def test_vault_url_uses_contract_name() -> None:
    assert vault_url_for("staging") == "https://flowchat-staging-kv.vault.azure.net"


def test_azure_missing_lists_properties_and_reads_no_value(
    fake_vault: Any, vault_client: Any
) -> None:
    fake_vault.seed("flow-agent-secret", "old-secret")
    fake_vault.seed("admin-token", "x")
    fake_vault.versions["admin-token"][-1]["attributes"]["enabled"] = False
    store = AzureSecretStore(vault_client)
    names = ["flow-agent-secret", "admin-token", "flow-tenant"]
    assert store.missing(names) == ["admin-token", "flow-tenant"]
    # one list of the vault's secret properties, never a GET of a secret (its value)
    gets = [urlsplit(u).path for m, u in fake_vault.requests if m == "GET"]
    assert gets and set(gets) == {"/secrets"}


def test_aws_missing_describes_and_reads_no_value(sm: Any) -> None:
    calls: list[str] = []
    sm.meta.events.register(
        "before-call.secretsmanager.*", lambda model, **kw: calls.append(model.name)
    )
    assert AwsSecretStore(sm).missing([NAME, "flowchat/staging/ABSENT"]) == [
        "flowchat/staging/ABSENT"
    ]
    assert calls == ["DescribeSecret", "DescribeSecret"]
