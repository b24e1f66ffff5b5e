"""ops.bootstrap: the one-time command plan per stack, and first secret values (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from app.contracts import STACK_SECRET_KEYS, secret_entry_name
from ops import bootstrap
from ops.secret_store import AwsSecretStore

ENV = {
    "FLOW_AGENT": "agent",
    "FLOW_TENANT": "tenant",
    "FLOW_AGENT_SECRET": "s3cret-value",
    "ADMIN_TOKEN": "admin-token-value",
    "API_KEYS": "key-one\nkey-two",
}


@pytest.fixture
def aws_entries(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The entries `pulumi up` creates on AWS: metadata only, no value."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        for key in STACK_SECRET_KEYS:
            client.create_secret(Name=secret_entry_name("aws", "prod", key))
        yield client


def test_first_values_are_written_once_and_never_over_a_value(aws_entries: Any) -> None:
    store = AwsSecretStore(aws_entries)
    values = bootstrap.first_values(ENV)
    written = bootstrap.write_first(store, "aws", "prod", values, progress=lambda _: None)
    assert written == list(STACK_SECRET_KEYS)
    name = secret_entry_name("aws", "prod", "API_KEYS")
    assert aws_entries.get_secret_value(SecretId=name)["SecretString"] == "key-one\nkey-two"
    redis = aws_entries.get_secret_value(
        SecretId=secret_entry_name("aws", "prod", "REDIS_PASSWORD")
    )
    assert len(redis["SecretString"]) >= 32  # generated
    again = bootstrap.first_values({**ENV, "FLOW_AGENT_SECRET": "other"})
    assert bootstrap.write_first(store, "aws", "prod", again, progress=lambda _: None) == []
    secret = secret_entry_name("aws", "prod", "FLOW_AGENT_SECRET")
    assert aws_entries.get_secret_value(SecretId=secret)["SecretString"] == "s3cret-value"


@pytest.mark.parametrize("missing", ["FLOW_AGENT_SECRET", "API_KEYS", "ADMIN_TOKEN"])
def test_a_missing_value_writes_nothing(
    aws_entries: Any, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    assert bootstrap.main(["secrets", "--stack", "prod"], env=env) == 1
    err = capsys.readouterr().err
    assert missing in err and "nothing was written" in err
    assert "s3cret-value" not in err
    for key in STACK_SECRET_KEYS:
        versions = aws_entries.list_secret_version_ids(
            SecretId=secret_entry_name("aws", "prod", key)
        )
        assert versions["Versions"] == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_plan_lists_the_one_time_commands_in_order(stack: str) -> None:
    lines = bootstrap.plan(stack, "acme", "acme/flowchat")
    text = "\n".join(lines)
    order = [
        f"pulumi up --stack acme/flowchat-platform/{stack}",
        "pulumi up --stack acme/flowchat-bootstrap/main",
        f"pulumi stack init acme/flowchat/{stack}",
        f"pulumi up --stack acme/flowchat/{stack} --yes --target",
        f"python -m ops.bootstrap secrets --stack {stack}",
        f"python -m ops.preflight --stack {stack}",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    # nothing hand-made is left: no User Access Administrator, no trust file nobody writes
    assert "User Access Administrator" not in text and "deploy-trust.json" not in text
    (up,) = [line for line in lines if line.startswith("pulumi up")]
    targets = up.split("--target ")[1:]
    vault_or_entries = "keyvault:Vault" if stack == "staging" else "secretsmanager/secret:Secret"
    assert any(vault_or_entries in t for t in targets)
    assert not any("kubernetes:" in t or "grafana:" in t for t in targets)
    # the parent component is targeted too (issue 19 item 5: the engine refuses an orphan target)
    assert any(t.strip().strip("'").endswith("flowchat:stacks:Secrets::flowchat") for t in targets)


def test_unknown_stack_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert bootstrap.main(["plan", "--stack", "nowhere", "--org", "o", "--repo", "o/r"]) == 1
    assert "no stack file Pulumi.nowhere.yaml" in capsys.readouterr().err
