"""ops.worker restart and ops.kube against a loopback Kubernetes API and a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from app.contracts import WORKER_DEPLOYMENT, namespace_for
from ops import kube, worker
from ops.summary import OpsError

NS = namespace_for("prod")


def args(fake_kube: Any, *extra: str) -> list[str]:
    return ["restart", "--stack", "prod", "--kubeconfig", str(fake_kube.kubeconfig),
            "--context", "fake", "--interval", "0.01", *extra]  # fmt: skip


def test_restart_rolls_waits_and_watches_the_queue_drain(
    fake_kube: Any, ops_redis: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_kube.add_deployment(NS, WORKER_DEPLOYMENT, replicas=3)
    summary = tmp_path / "summary.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        code = worker.main(args(fake_kube, "--redis-url", ops_redis))
    out = capsys.readouterr().out
    assert code == 0
    (patch,) = fake_kube.calls("PATCH", f"/deployments/{WORKER_DEPLOYMENT}")
    assert f"/namespaces/{NS}/" in patch[1]
    assert patch[2] == "application/strategic-merge-patch+json"
    assert (
        "kubectl.kubernetes.io/restartedAt"
        in patch[3]["spec"]["template"]["metadata"]["annotations"]
    )
    assert "1 of 3 new replicas updated" in out  # it waited through the rollout
    assert "3 of 3 replicas updated and available" in out
    assert "drained" in out
    assert "| queue drain | drained in" in summary.read_text()


def test_restart_without_redis_skips_the_drain_with_a_note(
    fake_kube: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kube.add_deployment(NS, WORKER_DEPLOYMENT)
    code = worker.main(args(fake_kube))
    assert code == 0
    assert "skipping the queue drain check" in capsys.readouterr().out


def test_stuck_rollout_fails_with_a_sentence(
    fake_kube: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kube.add_deployment(NS, WORKER_DEPLOYMENT)
    fake_kube.rollout_stuck = True
    code = worker.main(args(fake_kube, "--rollout-timeout", "0"))
    assert code == 1
    err = capsys.readouterr().err
    assert f"the rollout of deployment {NS}/{WORKER_DEPLOYMENT} did not finish within 0 s" in err


def test_missing_deployment_names_namespace_and_context(
    fake_kube: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = worker.main(args(fake_kube))
    assert code == 1
    assert "not found (HTTP 404); check --namespace and --context" in capsys.readouterr().err


def test_external_secret_sync_failure_is_reported(fake_kube: Any, kube_apis: Any) -> None:
    _, custom = kube_apis
    fake_kube.add_external_secret(NS, "es")
    fake_kube.sync_fails = True
    before = kube.force_sync_external_secret(custom, "es", NS)
    with pytest.raises(OpsError, match="failed to sync: SecretSyncedError"):
        kube.wait_for_external_secret(custom, "es", NS, before, interval=0, progress=print)


def test_progress_deadline_exceeded_is_a_failure() -> None:
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d", generation=2),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(),
            template=client.V1PodTemplateSpec(),
        ),
        status=client.V1DeploymentStatus(
            observed_generation=2,
            conditions=[
                client.V1DeploymentCondition(
                    type="Progressing",
                    status="False",
                    reason="ProgressDeadlineExceeded",
                    message="ReplicaSet has timed out progressing.",
                )
            ],
        ),
    )
    with pytest.raises(OpsError, match="exceeded its progress deadline"):
        kube.rollout_state(dep)


def test_restart_requires_a_stack_or_namespace(
    fake_kube: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kube.add_deployment(namespace_for("staging"), WORKER_DEPLOYMENT)
    argv = ["restart", "--kubeconfig", str(fake_kube.kubeconfig), "--context", "fake"]
    with pytest.raises(SystemExit) as info:
        worker.main(argv)
    assert info.value.code == 2
    assert "one of --stack or --namespace is required" in capsys.readouterr().err
    assert fake_kube.calls("PATCH") == []  # nothing was restarted by default


def test_restart_by_namespace_alone(fake_kube: Any) -> None:
    fake_kube.add_deployment("custom-ns", WORKER_DEPLOYMENT)
    argv = ["restart", "--namespace", "custom-ns", "--kubeconfig", str(fake_kube.kubeconfig),
            "--context", "fake", "--interval", "0.01"]  # fmt: skip
    assert worker.main(argv) == 0
    (patch,) = fake_kube.calls("PATCH", f"/deployments/{WORKER_DEPLOYMENT}")
    assert "/namespaces/custom-ns/" in patch[1]
