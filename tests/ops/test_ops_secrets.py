"""ops.secrets: the credentials' age against the rotation period, and `.env` against the secret
manager by fingerprint, on AWS Secrets Manager (moto) and Azure Key Vault (SDK, fake transport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from app.contracts import SECRET_KEYS, secret_entry_name
from ops import secrets as ops_secrets
from ops.rotate_credentials import refuse_unchanged
from ops.secret_store import AwsSecretStore, AzureSecretStore, SecretVersion
from ops.summary import OpsError

VALUES = {key: f"value-of-{key.lower()}-7f3a" for key in SECRET_KEYS}


@pytest.fixture
def sm() -> Any:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        for key, value in VALUES.items():
            client.create_secret(Name=secret_entry_name("aws", "prod", key), SecretString=value)
        yield client


def run(argv: list[str], store: Any, now: datetime | None = None) -> int:
    return ops_secrets.main(argv, store_factory=lambda *_: store, now=now)


def test_age_within_the_period_passes(sm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC) + timedelta(days=ops_secrets.ROTATION_PERIOD_DAYS - 1)
    assert run(["age", "--stack", "prod", "--cloud", "aws"], AwsSecretStore(sm), now) == 0
    out = capsys.readouterr().out
    assert "within the rotation period" in out
    assert "flowchat/prod/FLOW_AGENT_SECRET: written" in out


def test_age_past_the_period_fails_with_one_sentence(
    sm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC) + timedelta(days=ops_secrets.ROTATION_PERIOD_DAYS + 10)
    assert run(["age", "--stack", "prod", "--cloud", "aws"], AwsSecretStore(sm), now) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the Flow credentials of prod are older")
    assert "flowchat/prod/FLOW_AGENT_SECRET (40 days)" in err[0]
    assert "rotate-flow-credentials" in err[0]


def test_age_reads_the_current_azure_version(
    fake_vault: Any, vault_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    old = int((datetime.now(UTC) - timedelta(days=45)).timestamp())
    for key in SECRET_KEYS:
        name = secret_entry_name("azure", "staging", key)
        fake_vault.seed(name, "old")
        fake_vault.versions[name][-1]["attributes"]["created"] = old
    store = AzureSecretStore(vault_client)
    assert run(["age", "--stack", "staging", "--cloud", "azure"], store) == 1
    assert "flow-agent-secret (45 days)" in capsys.readouterr().err
    fake_vault.seed("flow-agent-secret", "new")  # a rotation adds a current version
    fake_vault.seed("flow-agent", "new")
    fake_vault.seed("flow-tenant", "new")
    assert run(["age", "--stack", "staging", "--cloud", "azure"], store) == 0


def write_env(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / ".env"
    lines = ["# local settings", "REDIS_URL=redis://127.0.0.1:6379/0"]
    lines += [f'export {k}="{v}"' for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_passes_when_env_mirrors_the_store(
    sm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path, VALUES)
    argv = ["check", "--stack", "prod", "--cloud", "aws", "--env-file", str(env)]
    assert run(argv, AwsSecretStore(sm)) == 0
    out = capsys.readouterr().out
    assert out.count(": same") == len(SECRET_KEYS)


def test_check_names_what_differs_and_never_prints_a_value(
    sm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = dict(VALUES, FLOW_AGENT_SECRET="stale-local-secret-9d2c")
    del local["ADMIN_TOKEN"]
    env = write_env(tmp_path, local)
    argv = ["check", "--stack", "prod", "--cloud", "aws", "--env-file", str(env)]
    assert run(argv, AwsSecretStore(sm)) == 1
    captured = capsys.readouterr()
    assert "FLOW_AGENT_SECRET (flowchat/prod/FLOW_AGENT_SECRET): DIFFERS" in captured.out
    assert "ADMIN_TOKEN (flowchat/prod/ADMIN_TOKEN): missing in the env file" in captured.out
    assert "FLOW_TENANT (flowchat/prod/FLOW_TENANT): same" in captured.out
    assert captured.err.strip() == (
        f"error: {env} does not mirror the secret manager of prod: FLOW_AGENT_SECRET, "
        "ADMIN_TOKEN differ or are missing"
    )
    for value in [*VALUES.values(), "stale-local-secret-9d2c"]:
        assert value not in captured.out + captured.err


def test_fingerprints_are_salted() -> None:
    assert ops_secrets.fingerprint("x", b"a") != ops_secrets.fingerprint("x", b"b")
    assert len(ops_secrets.fingerprint("x", b"a")) == ops_secrets.FINGERPRINT_HEX


def test_a_bad_env_file_is_one_sentence(sm: Any, tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="does not exist"):
        ops_secrets.parse_env_file(tmp_path / "missing.env")
    bad = tmp_path / "bad.env"
    bad.write_text("FLOW_AGENT\n")
    with pytest.raises(OpsError, match="line 1: expected KEY=VALUE"):
        ops_secrets.parse_env_file(bad)


def test_rotation_refuses_the_current_value() -> None:
    current = {
        "FLOW_AGENT_SECRET": SecretVersion(
            name="flowchat/prod/FLOW_AGENT_SECRET", version="v1", value=SecretStr("same")
        )
    }
    with pytest.raises(OpsError, match="equals the current version of flowchat/prod/FLOW_AGENT"):
        refuse_unchanged({"FLOW_AGENT_SECRET": SecretStr("same")}, current)
    refuse_unchanged({"FLOW_AGENT_SECRET": SecretStr("new")}, current)  # a real rotation
