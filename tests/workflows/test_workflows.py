"""The GitHub workflows: schema-valid, least privilege, gated deploys, policy packs, schedules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPECTED = {"ci", "preview", "deploy", "smoke", "rotate-flow-credentials", "drift", "load-test"}
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    on = wf.get("on", wf.get(True))  # PyYAML reads the key `on` as True
    return on if isinstance(on, dict) else {k: None for k in ([on] if isinstance(on, str) else on)}


def steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in wf["jobs"].values() for s in job.get("steps", [])]


def test_the_expected_workflows_exist() -> None:
    assert {p.stem for p in WORKFLOWS.glob("*.yml")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_valid(name: str) -> None:
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows",
         str(WORKFLOWS / f"{name}.yml")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_top_level_permissions_are_read_only(name: str) -> None:
    assert load(name)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_job_permissions_add_only_what_they_need(name: str) -> None:
    allowed = {"contents": {"read"}, "id-token": {"write"}, "pull-requests": {"write"},
               "issues": {"write"}, "actions": {"read"}}  # fmt: skip
    for job_name, job in load(name)["jobs"].items():
        for scope, level in (job.get("permissions") or {}).items():
            assert level in allowed.get(scope, set()), f"{name}/{job_name}: {scope}: {level}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_actions_are_pinned_at_least_by_major_tag(name: str) -> None:
    for step in steps(load(name)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]), step


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_run_line_echoes_a_secret(name: str) -> None:
    for step in steps(load(name)):
        run = step.get("run", "")
        assert "secrets." not in run, f"{name}: a run: script references secrets directly: {run}"
        for line in run.splitlines():
            assert not re.search(r"\b(echo|printf)\b.*\$\{?\{?\s*(secrets|env)\.", line), line


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_pulumi_step_runs_the_policy_pack(name: str) -> None:
    for step in steps(load(name)):
        if str(step.get("uses", "")).startswith("pulumi/actions@"):
            assert step["uses"] == "pulumi/actions@v6"
            with_ = step["with"]
            assert (with_.get("policyPacks") or with_.get("policy-packs")) == "policies", step
            assert re.fullmatch(r"\$\{\{ (vars|env)\.PULUMI_ORG \}\}/flowchat/.+",
                                with_["stack-name"])  # fmt: skip


def test_ci_runs_ci_run_on_prs_and_main() -> None:
    wf = load("ci")
    on = triggers(wf)
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]
    assert "concurrency" in wf
    assert any(".ci/run" in s.get("run", "") for s in steps(wf))


def test_deploy_gates_prod_behind_the_staging_smoke_test() -> None:
    wf = load("deploy")
    jobs = wf["jobs"]
    on = triggers(wf)
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert jobs["smoke-staging"]["needs"] == "up-staging"
    assert jobs["up-prod"]["needs"] == "smoke-staging"
    assert jobs["smoke-prod"]["needs"] == "up-prod"
    assert jobs["up-prod"]["environment"] == "production"
    assert jobs["up-staging"]["environment"] == "staging"
    runs = [s.get("run", "") for s in jobs["smoke-staging"]["steps"]]
    assert any("python -m ops.smoke --base-url" in r and "vars.STAGING_URL" in r for r in runs)
    assert any("rollout status" in s.get("run", "") for s in jobs["up-staging"]["steps"])
    for job_name, stack in (("up-staging", "staging"), ("up-prod", "prod")):
        (up,) = [s for s in jobs[job_name]["steps"] if "pulumi/actions" in s.get("uses", "")]
        assert up["with"]["command"] == "up"
        assert up["with"]["stack-name"].endswith(f"/flowchat/{stack}")
        assert jobs[job_name]["permissions"] == {"contents": "read", "id-token": "write"}
    # smoke jobs need no cloud token
    assert "permissions" not in jobs["smoke-staging"]


def test_deploy_concurrency_is_one_group_per_stack_never_cancelled() -> None:
    jobs = load("deploy")["jobs"]
    for job_name, job in jobs.items():
        stack = "staging" if job_name.endswith("staging") else "prod"
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}


def test_schedules() -> None:
    assert triggers(load("smoke"))["schedule"] == [{"cron": "*/30 * * * *"}]
    assert triggers(load("rotate-flow-credentials"))["schedule"] == [{"cron": "0 6 1 * *"}]
    assert triggers(load("drift"))["schedule"] == [{"cron": "0 5 * * *"}]
    for name in ("smoke", "rotate-flow-credentials", "drift"):
        assert "workflow_dispatch" in triggers(load(name))


def test_smoke_reports_one_issue_and_fails() -> None:
    wf = load("smoke")
    assert wf["jobs"]["smoke"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    report = wf["jobs"]["report"]
    assert report["needs"] == "smoke"
    assert "failure" in report["if"]
    assert report["permissions"]["issues"] == "write"
    script = report["steps"][0]["with"]["script"]
    assert "smoke-failure" in script and "core.setFailed" in script
    assert "issues.createComment" in script  # updates the open issue rather than adding another


def test_rotation_job_timeout_covers_forward_and_rollback() -> None:
    from ops import rotate_credentials, smoke

    defaults = rotate_credentials.build_parser().parse_args(["--stack", "staging"])
    waits = 3 * defaults.timeout  # the secret sync and two rollouts, each bounded by --timeout
    chats = 1 + len(smoke.load_prompts(defaults.prompts))  # round trip + regression prompts
    http = 10.0  # ops.smoke's per-request timeout on top of the latency budget
    smoke_worst = chats * (defaults.budget + http) + 2 * http  # + ping and readiness
    setup = 10 * 60  # checkout, Python, pip install, cloud login, cluster credentials
    worst = 2 * waits + smoke_worst + setup  # forward, then rollback
    for name, job in load("rotate-flow-credentials")["jobs"].items():
        assert job["timeout-minutes"] * 60 >= worst, (name, worst / 60)


def test_head_preview_step_keeps_the_exit_status(tmp_path: Path) -> None:
    """Run the head step's script with a stand-in `python` that fails for prod."""
    (head,) = [s for s in load("preview")["jobs"]["offline"]["steps"] if s.get("id") == "head"]
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\ncase "$*" in *"--stack prod"*) exit 1;; esac\nexit 0\n')
    fake.chmod(0o755)
    out = tmp_path / "output"
    work = tmp_path / "head"
    work.mkdir()
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "GITHUB_OUTPUT": str(out)}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", head["run"]],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the step itself goes on to the comment
    assert "status=1" in out.read_text().splitlines()
    assert "failed=prod=1" in out.read_text().splitlines()


def test_rotation_runs_staging_then_prod_with_secrets_from_the_environment() -> None:
    jobs = load("rotate-flow-credentials")["jobs"]
    assert jobs["rotate-prod"]["needs"] == "rotate-staging"
    assert jobs["rotate-prod"]["environment"] == "production"
    for name, stack in (("rotate-staging", "staging"), ("rotate-prod", "prod")):
        (step,) = [s for s in jobs[name]["steps"] if "ops.rotate_credentials" in s.get("run", "")]
        assert f"--stack {stack}" in step["run"]
        assert step["env"]["FLOW_AGENT_SECRET"] == "${{ secrets.FLOW_AGENT_SECRET }}"
        assert step["env"]["ADMIN_TOKEN"] == "${{ secrets.ADMIN_TOKEN }}"


def test_drift_prod_runs_read_only_without_the_reviewer_gate() -> None:
    job = load("drift")["jobs"]["drift"]
    environment = job["environment"]
    assert "'production-readonly'" in environment
    assert "'production'" not in environment  # the gated deploy environment is never used
    # the header documents what the read-only environment needs
    header = (WORKFLOWS / "drift.yml").read_text().split("\nname:", 1)[0]
    for needed in ("production-readonly", "Reader", "AWS_ROLE_ARN", "AZURE_CLIENT_ID", "OIDC"):
        assert needed in header, needed
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    assert "production-readonly" in runbook


def test_drift_refreshes_and_expects_no_changes() -> None:
    wf = load("drift")
    (step,) = [s for s in steps(wf) if "pulumi/actions" in s.get("uses", "")]
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is True
    assert step["with"]["expect-no-changes"] is True
    assert "drift" in wf["jobs"]["report"]["steps"][0]["with"]["script"]


def test_preview_is_fork_safe_and_fails_on_mandatory_violations() -> None:
    wf = load("preview")
    on = triggers(wf)
    assert "pull_request_target" not in on
    paths = on["pull_request"]["paths"]
    for wanted in ("Pulumi*.yaml", "__main__.py", "stacks/**", "policies/**", "app/contracts.py"):
        assert wanted in paths
    offline = wf["jobs"]["offline"]
    refs = [s["with"]["ref"] for s in offline["steps"] if s.get("uses") == "actions/checkout@v4"]
    assert any("base.sha" in r for r in refs) and any("head.sha" in r for r in refs)
    runs = "\n".join(s.get("run", "") for s in offline["steps"])
    assert "stacks.preview --stack" in runs and "ops.preview_diff" in runs
    assert "--fail-on-mandatory" in runs
    (comment,) = [s for s in offline["steps"] if "github-script" in s.get("uses", "")]
    assert comment["continue-on-error"] is True
    # the head preview's exit status is kept and fails the job last, after the comment
    (head,) = [s for s in offline["steps"] if '--json "../out/head-' in s.get("run", "")]
    assert "continue-on-error" not in head
    assert "GITHUB_OUTPUT" in head["run"]
    last = offline["steps"][-1]
    assert f"steps.{head['id']}.outputs.status" in last["if"] and "!cancelled()" in last["if"]
    assert last["run"].rstrip().endswith("exit 1")
    assert offline["steps"].index(comment) < offline["steps"].index(last)
    assert "${{ secrets" not in yaml.safe_dump(offline)  # runs without any secret
    pulumi = wf["jobs"]["pulumi"]
    assert "vars.PULUMI_PREVIEW_ENABLED == 'true'" in pulumi["if"]
    (step,) = [s for s in pulumi["steps"] if "pulumi/actions" in s.get("uses", "")]
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True


def test_pulumi_steps_exist_where_infrastructure_changes() -> None:
    counts = {
        name: sum("pulumi/actions" in s.get("uses", "") for s in steps(load(name)))
        for name in ("deploy", "drift", "preview")
    }
    assert counts == {"deploy": 2, "drift": 1, "preview": 1}
