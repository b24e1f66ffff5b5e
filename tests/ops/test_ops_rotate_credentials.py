"""ops.rotate_credentials: rotation and rollback against moto's Secrets Manager, the Key Vault
SDK at its transport, a loopback Kubernetes API and a loopback service stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from app.contracts import (
    ADMIN_TOKEN_SECRET,
    API_DEPLOYMENT,
    EXTERNAL_SECRET,
    FLOW_SECRET_NAMES,
    SECRET_PLACEHOLDER,
    WORKER_DEPLOYMENT,
    namespace_for,
    secret_entry_name,
)
from ops import rotate_credentials as rc
from ops.secret_store import AwsSecretStore, AzureSecretStore
from ops.smoke import load_prompts
from ops.summary import OpsError

NS = namespace_for("staging")
OLD = {"FLOW_AGENT": "agent-1", "FLOW_TENANT": "tenant-1", "FLOW_AGENT_SECRET": "secret-1"}
GOOD = {"FLOW_AGENT": "agent-2", "FLOW_TENANT": "tenant-2", "FLOW_AGENT_SECRET": "secret-2"}
BAD = {**GOOD, "FLOW_AGENT_SECRET": "revoked-secret"}


@pytest.fixture
def cluster(fake_kube: Any) -> Any:
    fake_kube.add_deployment(NS, API_DEPLOYMENT)
    fake_kube.add_deployment(NS, WORKER_DEPLOYMENT)
    fake_kube.add_external_secret(NS, EXTERNAL_SECRET)
    return fake_kube


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        for key, value in OLD.items():
            sm.create_secret(Name=secret_entry_name("aws", "staging", key), SecretString=value)
        yield sm


def aws_current(sm: Any, key: str) -> str:
    name = secret_entry_name("aws", "staging", key)
    return sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]


def wire_service_to_aws(cluster: Any, service: Any, sm: Any) -> dict[str, str]:
    """The pods' credential is what the secret store held at the last ExternalSecret sync."""
    synced = {"secret": aws_current(sm, "FLOW_AGENT_SECRET")}

    def on_sync() -> None:
        synced["secret"] = aws_current(sm, "FLOW_AGENT_SECRET")

    cluster.on_sync = on_sync
    service.healthy = lambda: synced["secret"] != BAD["FLOW_AGENT_SECRET"]
    return synced


def cli_args(cluster: Any, service: Any, prompts: Path) -> list[str]:
    return [
        "--stack", "staging", "--cloud", "aws",
        "--kubeconfig", str(cluster.kubeconfig), "--context", "fake",
        "--smoke-url", service.url, "--prompts", str(prompts),
        "--interval", "0.01", "--timeout", "30",
    ]  # fmt: skip


def restarts(cluster: Any, name: str) -> list[Any]:
    return [r for r in cluster.calls("PATCH", f"/deployments/{name}")]


def test_refuses_without_new_secret_in_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = rc.main(["--stack", "staging", "--cloud", "aws", "--skip-smoke"], env={})
    assert code == 1
    assert "FLOW_AGENT_SECRET is not set" in capsys.readouterr().err


def test_rotation_succeeds_and_summarises_without_values(
    aws: Any,
    cluster: Any,
    fake_service: Any,
    prompts_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    synced = wire_service_to_aws(cluster, fake_service, aws)
    summary = tmp_path / "summary.md"
    env = {**GOOD, "GITHUB_STEP_SUMMARY": str(summary)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        code = rc.main(cli_args(cluster, fake_service, prompts_file), env=env)
    out = capsys.readouterr()
    assert code == 0, out.err
    for key in FLOW_SECRET_NAMES:
        assert aws_current(aws, key) == GOOD[key]
    assert synced["secret"] == GOOD["FLOW_AGENT_SECRET"]
    es_patches = cluster.calls("PATCH", "/externalsecrets/")
    assert len(es_patches) == 1
    assert es_patches[0][2] == "application/merge-patch+json"
    assert "force-sync" in es_patches[0][3]["metadata"]["annotations"]
    for name in (API_DEPLOYMENT, WORKER_DEPLOYMENT):
        (patch,) = restarts(cluster, name)
        annotations = patch[3]["spec"]["template"]["metadata"]["annotations"]
        assert "kubectl.kubernetes.io/restartedAt" in annotations
    assert fake_service.chats == 2  # the smoke's round trip and one regression prompt
    text = summary.read_text()
    assert "succeeded" in text
    for value in (*OLD.values(), *GOOD.values()):
        assert value not in text
        assert value not in out.out + out.err


def test_failed_smoke_rolls_back_to_previous_versions(
    aws: Any,
    cluster: Any,
    fake_service: Any,
    prompts_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    synced = wire_service_to_aws(cluster, fake_service, aws)
    code = rc.main(cli_args(cluster, fake_service, prompts_file), env=dict(BAD))
    err = capsys.readouterr().err
    assert code == 1
    assert "rolled back" in err
    assert "Flow refused the credentials" in err  # the smoke's reason is named
    for key in FLOW_SECRET_NAMES:
        assert aws_current(aws, key) == OLD[key]
    # the pods were synced and restarted twice: once with the new values, once after rollback
    assert len(cluster.calls("PATCH", "/externalsecrets/")) == 2
    assert synced["secret"] == OLD["FLOW_AGENT_SECRET"]
    assert len(restarts(cluster, API_DEPLOYMENT)) == 2
    assert len(restarts(cluster, WORKER_DEPLOYMENT)) == 2
    assert BAD["FLOW_AGENT_SECRET"] not in err


def test_stuck_rollout_rolls_back(aws: Any, cluster: Any, kube_apis: Any) -> None:
    apps, custom = kube_apis
    cluster.rollout_stuck = True
    result = rc.rotate(
        stack="staging",
        cloud="aws",
        namespace=NS,
        values={"FLOW_AGENT_SECRET": SecretStr("secret-2")},
        store=AwsSecretStore(aws),
        apps=apps,
        custom=custom,
        smoke=None,
        timeouts=rc.RotationTimeouts(rollout=0.0, interval=0.0),
        progress=lambda _: None,
    )
    assert not result.ok
    assert not result.rolled_back  # the second rollout is stuck as well
    assert "rollback failed too" in result.message
    # the entry itself was restored before the restart failed again
    assert aws_current(aws, "FLOW_AGENT_SECRET") == OLD["FLOW_AGENT_SECRET"]


def test_missing_entry_fails_before_writing(aws: Any, cluster: Any, kube_apis: Any) -> None:
    apps, custom = kube_apis
    aws.delete_secret(
        SecretId=secret_entry_name("aws", "staging", "FLOW_TENANT"), ForceDeleteWithoutRecovery=True
    )
    with pytest.raises(OpsError, match="does not exist"):
        rc.rotate(
            stack="staging",
            cloud="aws",
            namespace=NS,
            values={k: SecretStr(v) for k, v in GOOD.items()},
            store=AwsSecretStore(aws),
            apps=apps,
            custom=custom,
            smoke=None,
            progress=lambda _: None,
        )
    assert aws_current(aws, "FLOW_AGENT_SECRET") == OLD["FLOW_AGENT_SECRET"]
    assert cluster.calls("PATCH") == []


@pytest.mark.parametrize("healthy", [True, False])
def test_azure_rotation(
    healthy: bool,
    cluster: Any,
    kube_apis: Any,
    fake_vault: Any,
    vault_client: Any,
    fake_service: Any,
    prompts_file: Path,
) -> None:
    apps, custom = kube_apis
    name = secret_entry_name("azure", "staging", "FLOW_AGENT_SECRET")
    assert name == "flow-agent-secret"
    fake_vault.seed(name, "secret-1")
    fake_service.healthy = lambda: healthy
    smoke = rc.smoke_runner(fake_service.url, None, load_prompts(prompts_file), 5.0)
    result = rc.rotate(
        stack="staging",
        cloud="azure",
        namespace=NS,
        values={"FLOW_AGENT_SECRET": SecretStr("secret-2")},
        store=AzureSecretStore(vault_client),
        apps=apps,
        custom=custom,
        smoke=smoke,
        timeouts=rc.RotationTimeouts(interval=0.0),
        progress=lambda _: None,
    )
    assert result.ok is healthy
    assert result.rolled_back is (not healthy)
    assert fake_vault.current(name) == ("secret-2" if healthy else "secret-1")
    assert len(cluster.calls("PATCH", "/externalsecrets/")) == (1 if healthy else 2)


def test_cloud_comes_from_stack_config(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  flowchat:cloud: azure\n")
    assert rc.cloud_of_stack("prod", tmp_path) == "azure"
    with pytest.raises(OpsError, match="pass --cloud"):
        rc.cloud_of_stack("staging", tmp_path)


def test_only_given_values_are_rotated() -> None:
    values = rc.new_values_from_env({"FLOW_AGENT_SECRET": "s", "FLOW_TENANT": ""})
    assert list(values) == ["FLOW_AGENT_SECRET"]


# --- failures after the write: any exception rolls back ----------------------------------------
def fail_once(method: str, needle: str, what: str) -> Any:
    """A FakeKube fault: the first matching request gets `what`, later ones are served."""
    left = [1]

    def fault(m: str, path: str) -> str | None:
        if m == method and needle in path and left[0]:
            left[0] -= 1
            return what
        return None

    return fault


@pytest.mark.parametrize(
    ("method", "needle", "what", "sentence"),
    [
        (
            "PATCH",
            f"/deployments/{API_DEPLOYMENT}",
            "close",
            f"restarting deployment {NS}/{API_DEPLOYMENT} failed: the Kubernetes API could not "
            "be reached or dropped the connection",
        ),
        (
            "GET",
            f"/deployments/{WORKER_DEPLOYMENT}",
            "garbage",
            f"reading deployment {NS}/{WORKER_DEPLOYMENT} failed: the Kubernetes API answered "
            "with something that is not JSON",
        ),
        (
            "GET",
            "/externalsecrets/",
            "garbage",
            f"reading ExternalSecret {NS}/{EXTERNAL_SECRET} failed: the Kubernetes API answered "
            "with something that is not JSON",
        ),
    ],
)
def test_kubernetes_transport_failure_after_writing_rolls_back(
    aws: Any,
    cluster: Any,
    capsys: pytest.CaptureFixture[str],
    method: str,
    needle: str,
    what: str,
    sentence: str,
) -> None:
    # the ExternalSecret GET before the first write must succeed: fail the second one instead
    if needle == "/externalsecrets/":
        seen = [0]

        def fault(m: str, path: str) -> str | None:
            if m == "GET" and needle in path:
                seen[0] += 1
                return what if seen[0] == 2 else None
            return None

        cluster.fault = fault
    else:
        cluster.fault = fail_once(method, needle, what)
    argv = [
        "--stack", "staging", "--cloud", "aws", "--skip-smoke",
        "--kubeconfig", str(cluster.kubeconfig), "--context", "fake",
        "--interval", "0.01", "--timeout", "30",
    ]  # fmt: skip
    code = rc.main(argv, env=dict(GOOD))
    err = capsys.readouterr().err
    assert code == 1
    assert sentence in err
    assert "rolled back to the previous credentials" in err
    for key in FLOW_SECRET_NAMES:
        assert aws_current(aws, key) == OLD[key]
    assert len(cluster.calls("PATCH", "/externalsecrets/")) == 2  # forward and rollback syncs


def rotate_staging(aws: Any, kube_apis: Any, smoke: Any) -> rc.RotationResult:
    apps, custom = kube_apis
    return rc.rotate(
        stack="staging",
        cloud="aws",
        namespace=NS,
        values={k: SecretStr(v) for k, v in GOOD.items()},
        store=AwsSecretStore(aws),
        apps=apps,
        custom=custom,
        smoke=smoke,
        timeouts=rc.RotationTimeouts(interval=0.0),
        progress=lambda _: None,
    )


def test_unexpected_exception_after_writing_rolls_back(
    aws: Any, cluster: Any, kube_apis: Any
) -> None:
    def smoke() -> Any:
        raise RuntimeError("the smoke client crashed")

    result = rotate_staging(aws, kube_apis, smoke)
    assert not result.ok and result.rolled_back
    assert "unexpected RuntimeError: the smoke client crashed" in result.message
    assert "rolled back" in result.message
    for key in FLOW_SECRET_NAMES:
        assert aws_current(aws, key) == OLD[key]


def test_interrupt_after_writing_rolls_back_then_stops(
    aws: Any, cluster: Any, kube_apis: Any
) -> None:
    def smoke() -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate_staging(aws, kube_apis, smoke)
    for key in FLOW_SECRET_NAMES:
        assert aws_current(aws, key) == OLD[key]
    assert len(cluster.calls("PATCH", "/externalsecrets/")) == 2


# --- the admin token ------------------------------------------------------------------------------
ADMIN_ENTRY = secret_entry_name("aws", "staging", ADMIN_TOKEN_SECRET)


# (one rotation per test: moto 5.2 keeps a stale AWSCURRENT label when a version is written after
# update_secret_version_stage, which real Secrets Manager does not)
@pytest.mark.parametrize("healthy", [True, False])
def test_admin_token_is_rotated_and_rolled_back_like_the_flow_entries(
    aws: Any, cluster: Any, fake_service: Any, prompts_file: Path, healthy: bool
) -> None:
    aws.create_secret(Name=ADMIN_ENTRY, SecretString=SECRET_PLACEHOLDER)
    wire_service_to_aws(cluster, fake_service, aws)
    env = {**(GOOD if healthy else BAD), ADMIN_TOKEN_SECRET: "admin-2"}
    assert rc.main(cli_args(cluster, fake_service, prompts_file), env=env) == (0 if healthy else 1)
    assert aws_current(aws, ADMIN_TOKEN_SECRET) == ("admin-2" if healthy else SECRET_PLACEHOLDER)
    assert aws_current(aws, "FLOW_AGENT_SECRET") == (GOOD if healthy else OLD)["FLOW_AGENT_SECRET"]


def test_rotation_without_admin_token_warns_while_it_is_the_placeholder(
    aws: Any,
    cluster: Any,
    fake_service: Any,
    prompts_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws.create_secret(Name=ADMIN_ENTRY, SecretString=SECRET_PLACEHOLDER)
    wire_service_to_aws(cluster, fake_service, aws)
    summary = tmp_path / "summary.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        code = rc.main(cli_args(cluster, fake_service, prompts_file), env=dict(GOOD))
    assert code == 0
    assert "admin (document) routes stay disabled" in capsys.readouterr().out
    assert f"{ADMIN_TOKEN_SECRET} still holds the placeholder" in summary.read_text()
    assert aws_current(aws, ADMIN_TOKEN_SECRET) == SECRET_PLACEHOLDER  # not touched


def test_admin_token_comes_from_the_environment_and_never_as_the_placeholder() -> None:
    values = rc.new_values_from_env({"FLOW_AGENT_SECRET": "s", ADMIN_TOKEN_SECRET: "a"})
    assert sorted(values) == sorted(["FLOW_AGENT_SECRET", ADMIN_TOKEN_SECRET])
    with pytest.raises(OpsError, match="placeholder"):
        rc.new_values_from_env({"FLOW_AGENT_SECRET": "s", ADMIN_TOKEN_SECRET: SECRET_PLACEHOLDER})


def test_help_says_the_first_rotation_must_set_the_admin_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        rc.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "ADMIN_TOKEN" in out
    assert "first rotation after a fresh `pulumi up` must set ADMIN_TOKEN" in out
