"""stacks/preview.py and render.render_stack: the CLI contract, JSON report, --set, exit codes.

These run the whole program (`__main__.py`), so they need stacks/monitoring.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.contracts import API_DEPLOYMENT
from app.core.settings import REPO_ROOT
from stacks import preview
from stacks.render import render_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict]]:
    out = {}
    for stack in ("staging", "prod"):
        path = tmp_path_factory.mktemp("preview") / f"{stack}.json"
        code = preview.main(["--stack", stack, "--json", str(path)])
        out[stack] = (code, json.loads(path.read_text()))
    return out


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_committed_stacks_preview_clean(reports: dict, stack: str) -> None:
    code, report = reports[stack]
    assert code == 0
    assert set(report) == {"stack", "resources", "violations"}
    assert report["stack"] == stack
    for resource in report["resources"]:
        assert set(resource) == {"type", "name", "inputs"}
    keys = [(r["type"], r["name"]) for r in report["resources"]]
    assert keys == sorted(keys)
    for violation in report["violations"]:
        assert set(violation) == {"policy", "level", "message", "resource"}
        assert violation["level"] != "mandatory"


def test_render_stack_returns_plain_sorted_resources() -> None:
    resources = render_stack("prod")
    assert [(r.type, r.name) for r in resources] == sorted((r.type, r.name) for r in resources)
    api = next(
        r
        for r in resources
        if r.inputs.get("metadata", {}).get("name") == API_DEPLOYMENT
        and r.inputs.get("kind") == "Deployment"
    )
    assert api.inputs["spec"]["replicas"] == 3 and isinstance(api.inputs["spec"]["replicas"], int)
    assert api.urn.startswith("urn:pulumi:prod::flowchat::")
    assert api.parent_urn and "flowchat:stacks:Service" in api.parent_urn
    json.dumps([r.inputs for r in resources])  # plain JSON


def test_overrides_switch_cloud_and_tighten_thresholds() -> None:
    resources = render_stack(
        "prod",
        config_overrides={
            "flowchat:cloud": "azure",
            "flowchat:azure": json.dumps(
                {"resourceGroup": "rg", "tenantId": "t", "oidcIssuerUrl": "https://issuer/"}
            ),
            "thresholds.healthProbeIntervalSeconds": "20",
        },
    )
    types = {r.type for r in resources}
    assert "azure-native:keyvault:Vault" in types
    assert not any(t.startswith("aws:") for t in types)
    api = next(
        r
        for r in resources
        if r.inputs.get("kind") == "Deployment" and r.inputs["metadata"]["name"] == API_DEPLOYMENT
    )
    assert (
        api.inputs["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSeconds"]
        == 20
    )


def test_cli_set_overrides_reach_the_report(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code = preview.main(
        [
            *("--stack", "staging", "--set", "api.replicas=2", "--set", "cloud=aws"),
            *("--set", "aws.roleArn=arn:aws:iam::123456789012:role/existing"),
            *("--json", str(path)),
        ]
    )
    assert code == 0
    report = json.loads(path.read_text())
    assert any(r["type"].startswith("aws:secretsmanager") for r in report["resources"])
    api = next(
        r
        for r in report["resources"]
        if r["inputs"].get("kind") == "Deployment"
        and r["inputs"]["metadata"]["name"] == API_DEPLOYMENT
    )
    assert api["inputs"]["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--stack", "staging", "--set", "api.replicas=-1"], "flowchat:api.replicas: must be >= 0"),
        (["--stack", "staging", "--set", "cloud=gcp"], "flowchat:cloud: must be one of"),
        (["--stack", "staging", "--set", "image.tag=latest"], "flowchat:image.tag"),
        (["--stack", "nowhere"], "Pulumi.nowhere.yaml"),
    ],
)
def test_bad_config_exits_2_naming_the_key(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preview.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--stack", "staging", "--set", "novalue"], []):
        with pytest.raises(SystemExit) as info:
            preview.main(argv)
        assert info.value.code == 2
    assert "--set expects key=value" in capsys.readouterr().err


def test_schema_errors_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = preview.validate_manifest

    def failing(manifest: dict) -> tuple[list[str], bool]:
        errors, builtin = real(manifest)
        if manifest["kind"] == "Ingress":
            errors = [*errors, "spec: injected"]
        return errors, builtin

    monkeypatch.setattr(preview, "validate_manifest", failing)
    path = tmp_path / "schema.json"
    assert preview.main(["--stack", "staging", "--json", str(path)]) == 1
    # the JSON report carries the error as a mandatory violation (the PR check fails on these)
    report = json.loads(path.read_text())
    (violation,) = [v for v in report["violations"] if v["policy"] == "kubernetes-schema"]
    ingress = next(r for r in report["resources"] if r["type"].endswith("Ingress"))
    assert violation["level"] == "mandatory"
    assert violation["message"] == f"{ingress['type']} {ingress['name']}: spec: injected"
    assert violation["resource"].startswith("urn:pulumi:staging::flowchat::")
    assert violation["resource"].endswith(f"::{ingress['name']}")
    # and ops.preview_diff, the PR check's gate, fails on it
    from ops import preview_diff

    assert preview_diff.main([str(path), str(path), "--fail-on-mandatory"]) == 1


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        preview.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--stack" in out and "--json" in out and "--set" in out and "Exit status" in out


def test_weakened_threshold_is_a_mandatory_violation_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "weak.json"
    code = preview.main(
        ["--stack", "prod", "--set", "thresholds.queueDepth=50", "--json", str(path)]
    )
    assert code == 1
    levels = {v["level"] for v in json.loads(path.read_text())["violations"]}
    assert "mandatory" in levels


def test_a_pr_raising_the_prod_queue_threshold_to_50_fails_preview(tmp_path: Path) -> None:
    """Issue 5's "done when": edit Pulumi.prod.yaml as a pull request would, run the command."""
    import subprocess
    import sys

    import yaml

    project = tmp_path / "checkout"
    project.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in {"Pulumi.prod.yaml", ".git", ".venv", "var"}:
            (project / entry.name).symlink_to(entry)
    stack_file = yaml.safe_load((REPO_ROOT / "Pulumi.prod.yaml").read_text())
    thresholds = dict(stack_file["config"].get("flowchat:thresholds") or {})
    thresholds["queueDepth"] = 50
    stack_file["config"]["flowchat:thresholds"] = thresholds
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump(stack_file))

    done = subprocess.run(
        [sys.executable, "-m", "stacks.preview", "--stack", "prod", "--project-dir", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "queue-depth-alert" in x)
    assert "MANDATORY" in line and "FlowchatQueueBacklog" in line
    assert "threshold 50" in line and "bound 20" in line


@pytest.mark.parametrize(
    ("stack", "annotation"),
    [("staging", "azure.workload.identity/client-id"), ("prod", "eks.amazonaws.com/role-arn")],
)
def test_preview_renders_computed_outputs_as_unknown(stack: str, annotation: str) -> None:
    """Issue 9 item 11: the preview runs with preview semantics (what a new identity's id will
    be is unknown until it exists) and through the explicit providers."""

    def service_account(resources: list) -> dict:
        (sa,) = [r for r in resources if r.inputs.get("kind") == "ServiceAccount"]
        return sa.inputs["metadata"]["annotations"]

    previewed = render_stack(stack)
    assert service_account(previewed)[annotation] == "[unknown]"
    applied = render_stack(stack, preview=False)
    assert service_account(applied)[annotation] not in ("[unknown]", "", None)
    providers = {r.type for r in previewed if r.type.startswith("pulumi:providers:")}
    assert {"pulumi:providers:kubernetes", "pulumi:providers:grafana"} <= providers
    assert all(r.provider for r in previewed if r.custom and r.type not in providers)
