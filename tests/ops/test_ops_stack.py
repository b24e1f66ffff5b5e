"""ops.stack: `--stack local` reads the file make run writes; `--stack staging|prod` forwards the
stack's Redis with kubectl and takes the password from the stack's Kubernetes Secret."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from app.contracts import ADMIN_TOKEN_SECRET, EXTERNAL_SECRET, REDIS_PASSWORD_SECRET
from ops import queue as q
from ops import stack as st


def test_the_redis_service_and_port_are_the_stacks() -> None:
    from stacks import stores

    assert st.REDIS_SERVICE == stores.REDIS_NAME
    assert st.REDIS_PORT == stores.REDIS_PORT


def test_the_api_url_comes_from_the_platform_stack_file() -> None:
    """staging/prod name their platform stack; its file's hostLabel.dnsZone is the hostname."""
    import yaml

    from platform_stack.settings import PROJECT_DIR, PlatformSettings

    default_label = PlatformSettings.model_fields["host_label"].default
    for stack in st.CLOUD_STACKS:
        config = yaml.safe_load((st.REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        platform_stack = config["flowchat:platform"]["stack"].rsplit("/", 1)[1]
        platform = yaml.safe_load((PROJECT_DIR / f"Pulumi.{platform_stack}.yaml").read_text())
        platform = platform["config"]
        label = platform.get("flowchat-platform:hostLabel", default_label)
        host = f"{label}.{platform['flowchat-platform:dnsZone']}"
        assert st.api_url_of_stack(stack) == f"https://{host}"


def test_the_api_url_of_an_external_platform_is_its_hostname(tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load((st.REPO_ROOT / "Pulumi.staging.yaml").read_text())
    external = {
        "clusterName": "team-cluster",
        "ingressClass": "nginx",
        "ingressNamespace": "ingress-nginx",
        "storageClass": "gp3",
        "sharedStorageClass": "efs-sc",
        "clusterIssuer": "letsencrypt",
        "hostname": "chat.team.ciandt.com",
        "oidcIssuerUrl": "https://oidc.team.ciandt.com",
        "prometheusUrl": "http://prometheus.monitoring.svc:9090",
        "proberUrl": "blackbox.monitoring.svc:9115",
        "pushgatewayUrl": "http://pushgateway.monitoring.svc:9091",
        "kedaNamespace": "keda",
        "monitoringNamespace": "monitoring",
        "networkPolicyEngine": "calico",
        "serviceNamespaces": ["flowchat-staging"],
    }
    config["config"]["flowchat:platform"] = {"external": external}
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(config))
    assert st.api_url_of_stack("staging", tmp_path) == "https://chat.team.ciandt.com"


def test_a_missing_platform_stack_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  flowchat:platform:\n    stack: flowchat-platform/nowhere\n"
    )
    with pytest.raises(st.OpsError, match=r"Pulumi\.nowhere\.yaml does not exist; pass --base-url"):
        st.api_url_of_stack("staging", tmp_path, platform_dir=tmp_path)


def test_local_stack_file_written_by_the_local_stack_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.local.stack import LocalStack, Ports

    keys = tmp_path / "keys"
    keys.write_text("# a comment\nkey-one\nkey-two\n")
    local = LocalStack(
        root=tmp_path, ports=Ports.free(), env_overrides={"API_KEYS_FILE": str(keys)}
    )
    path = local.write_stack_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert local.redis_password not in text and local.admin_token not in text
    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(path))
    target = st.load_local()
    assert target.redis_url == f"redis://127.0.0.1:{local.ports.redis}/0"
    assert (
        target.redis_password and target.redis_password.get_secret_value() == local.redis_password
    )
    assert target.admin_token and target.admin_token.get_secret_value() == local.admin_token
    assert target.api_key and target.api_key.get_secret_value() == "key-one"
    assert target.api_url == local.base_url


FAKE_KUBECTL = """#!{python}
import os, sys, time
# a kubectl stand-in for `port-forward`: records its argv, announces the forward as kubectl does
# (to the test's real Redis), then stays up until it is stopped
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
print("Forwarding from 127.0.0.1:" + os.environ["FAKE_KUBECTL_PORT"] + " -> 6379", flush=True)
time.sleep(600)
"""


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return log


def test_a_cloud_stack_is_reached_through_port_forward_and_its_secret(
    fake_kube: Any,
    fake_kubectl: Path,
    ops_redis_plain: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 1 for staging/prod: no URL, no password typed; both come from the stack."""
    url, password = ops_redis_plain
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("FAKE_KUBECTL_PORT", url.rsplit(":", 1)[1].split("/")[0])
    fake_kube.add_secret(
        "flowchat-staging",
        EXTERNAL_SECRET,
        {REDIS_PASSWORD_SECRET: password, ADMIN_TOKEN_SECRET: "admin"},
    )
    code = q.main(["status", "--stack", "staging", "--kubeconfig", str(fake_kube.kubeconfig)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Redis of stack staging is reachable" in out and password not in out
    (call,) = fake_kubectl.read_text().splitlines()
    assert call.startswith("-n flowchat-staging port-forward svc/flowchat-redis :6379")
    assert ("GET", f"/api/v1/namespaces/flowchat-staging/secrets/{EXTERNAL_SECRET}") in [
        r[:2] for r in fake_kube.requests
    ]


def test_a_stack_secret_without_the_redis_password_is_one_sentence(
    fake_kube: Any, fake_kubectl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kube.add_secret("flowchat-prod", EXTERNAL_SECRET, {ADMIN_TOKEN_SECRET: "admin"})
    code = q.main(["status", "--stack", "prod", "--kubeconfig", str(fake_kube.kubeconfig)])
    assert code == 1
    assert f"has no {REDIS_PASSWORD_SECRET}" in capsys.readouterr().err
    assert not fake_kubectl.exists()  # nothing forwarded before the password is known


def test_smoke_of_a_cloud_stack_needs_no_cluster_access(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`ops.smoke --stack staging` takes the URL from Pulumi.staging.yaml and reads nothing from
    Kubernetes (the smoke workflow has no cluster credentials)."""
    from ops import smoke

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    code = smoke.main(["--stack", "staging", "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"Smoke test of {st.api_url_of_stack('staging')}" in out
