"""The GitHub workflows as GitHub runs them: pinned actions, credentials before Pulumi, one
concurrency group per stack, CI-gated deploys by image digest, one prod approval, zizmor clean."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import secrets as ops_secrets

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPECTED = {
    "ci", "preview", "deploy", "smoke", "rotate-flow-credentials", "drift", "load-test", "evaluate"
}  # fmt: skip
EXPECTED |= {"incidents"}  # issue 22: the weekly operations-log review
BIN = Path(sys.executable).parent
CHECK_JSONSCHEMA = BIN / "check-jsonschema"
ZIZMOR = BIN / "zizmor"
STACKS = ("staging", "prod")
CLOUD = {"staging": "azure", "prod": "aws"}
# workflows that change or inspect a stack: they share the stack's one concurrency group
STACK_WORKFLOWS = ("deploy", "rotate-flow-credentials", "drift")

# Every action by full commit SHA of a real release. Where each SHA was read (public workflows
# that pin with a version comment, at least two independent sources each) is in the lead's
# report for issue 9; bump a pin here and in the workflows together.
PINS = {
    "actions/checkout": ("df4cb1c069e1874edd31b4311f1884172cec0e10", "v6.0.3"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/github-script": ("60a0d83039c74a4aee543508d2ffcb1c3799cdea", "v7.0.1"),
    # pinned with this version comment by many public workflows (issue 23 fixer's search)
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
    "pulumi/auth-actions": ("141415910c3beb54e03b48e9057c204c97b956f2", "v2.1.0"),
    "azure/login": ("532459ea530d8321f2fb9bb10d1e0bcf23869a43", "v3.0.0"),
    "azure/use-kubelogin": ("0ce7c36141aa27d4934872cf00b0120804c98a29", "v1.3"),
    "azure/aks-set-context": ("60623acbdcbbdcf799ad50a1adf8703874339f8b", "v5.0.0"),
    "aws-actions/configure-aws-credentials": (
        "7474bc4690e29a8392af63c5b98e7449536d5c3a",
        "v4.3.1",
    ),
    "docker/setup-buildx-action": ("b5ca514318bd6ebac0fb2aedd5d36ec1b5c232a2", "v3.10.0"),
    "docker/login-action": ("74a5d142397b4f367a81961eba4e8cd7edddf772", "v3.4.0"),
    "docker/build-push-action": ("263435318d21b8e681c14492fe198d362a7d2c83", "v6.18.0"),
    # v2.4.0's commit as pinned (with that version comment) by many public workflows
    "actions/attest-build-provenance": ("e8998f949152b193b063cb0ec769d69d929409be", "v2.4.0"),
    # v2.4.0 ("bump actions/attest from 2.3.0 to 2.4.0"), pinned so by public workflows and
    # pin tables beside attest-build-provenance v2.4.0 above
    "actions/attest-sbom": ("bd218ad0dbcb3e146bd073d1d9c6d78e08aa8a0b", "v2.4.0"),
}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    on = wf.get("on", wf.get(True))  # PyYAML reads the key `on` as True
    return on if isinstance(on, dict) else {k: None for k in ([on] if isinstance(on, str) else on)}


def steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in wf["jobs"].values() for s in job.get("steps", [])]


def action(step: dict[str, Any]) -> str:
    """`owner/repo` of a step's `uses`, or "" for a run step."""
    return str(step.get("uses", "")).split("@", 1)[0]


def pulumi_jobs() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(workflow, job name, stack, job) for every job with a pulumi/actions step."""
    found = []
    for name in sorted(EXPECTED):
        for job_name, job in load(name)["jobs"].items():
            for step in job.get("steps", []):
                if action(step) == "pulumi/actions":
                    stack = step["with"]["stack-name"].rsplit("/", 1)[-1]
                    found.append((name, job_name, stack, job))
    return found


def index_of(job: dict[str, Any], predicate: Any) -> int:
    matches = [i for i, s in enumerate(job["steps"]) if predicate(s)]
    assert matches, "no such step"
    return matches[0]


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


def test_zizmor_reports_no_high_or_medium_finding() -> None:
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    findings = json.loads(result.stdout)
    assert isinstance(findings, list)
    severe = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"])
        for f in findings
        if f["determinations"]["severity"] in ("High", "Medium")
    ]
    assert severe == []


def test_zizmor_sees_an_unpinned_action(tmp_path: Path) -> None:
    """The check above can fail: a tag-pinned action is a finding zizmor reports offline."""
    text = (WORKFLOWS / "smoke.yml").read_text()
    pinned = "actions/checkout@df4cb1c069e1874edd31b4311f1884172cec0e10 # v6.0.3\n"
    pinned += "        with:\n          persist-credentials: false\n"
    assert pinned in text
    (tmp_path / "smoke.yml").write_text(text.replace(pinned, "actions/checkout@v4\n"))
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", str(tmp_path / "smoke.yml")],
        capture_output=True,
        text=True,
    )
    idents = {f["ident"] for f in json.loads(result.stdout)}
    assert {"unpinned-uses", "artipacked"} <= idents


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_top_level_permissions_are_read_only(name: str) -> None:
    assert load(name)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_job_states_least_privilege_permissions(name: str) -> None:
    allowed = {"contents": {"read"}, "id-token": {"write"}, "pull-requests": {"write"},
               "issues": {"write", "read"}, "actions": {"read"}, "packages": {"write", "read"},
               "attestations": {"write", "read"}}  # fmt: skip
    for job_name, job in load(name)["jobs"].items():
        perms = job.get("permissions")
        assert perms is not None, f"{name}/{job_name} inherits permissions"
        for scope, level in perms.items():
            assert level in allowed.get(scope, set()), f"{name}/{job_name}: {scope}: {level}"
        uses = {action(s) for s in job.get("steps", [])}
        verifies = any("gh attestation verify" in s.get("run", "") for s in job.get("steps", []))
        attests = "actions/attest-build-provenance" in uses
        # only OIDC logins and the provenance attestation (signed with the job's OIDC token) get
        # an id-token; only the image build writes packages and attestations; only the jobs that
        # verify an attestation read them (and the image manifest)
        oidc = {"pulumi/auth-actions", "azure/login", "aws-actions/configure-aws-credentials"}
        where = f"{name}/{job_name}"
        assert ("id-token" in perms) == (bool(uses & oidc) or attests), where
        builds = "docker/build-push-action" in uses
        assert perms.get("packages") == ("write" if builds else "read" if verifies else None), where
        assert perms.get("attestations") == (
            "write" if attests else "read" if verifies else None
        ), where
        assert attests == builds, where  # the job that pushes the image attests it


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_actions_are_pinned_by_commit_sha_with_the_version_in_a_comment(name: str) -> None:
    lines = (WORKFLOWS / f"{name}.yml").read_text().splitlines()
    uses_lines = [line for line in lines if re.match(r"\s*(- )?uses: ", line)]
    assert uses_lines
    for line in uses_lines:
        ref = line.split("uses:", 1)[1].strip()
        if ref.startswith("./"):  # a workflow of this repository (ci.yml)
            continue
        m = re.fullmatch(r"([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v[\d.]+)", ref)
        assert m, line
        assert PINS.get(m[1]) == (m[2], m[3]), f"{name}: {ref} is not the recorded pin"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_checkouts_keep_no_credentials(name: str) -> None:
    checkouts = [s for s in steps(load(name)) if action(s) == "actions/checkout"]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False, step


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_run_line_echoes_a_secret(name: str) -> None:
    for step in steps(load(name)):
        run = step.get("run", "")
        assert "secrets." not in run, f"{name}: a run: script references secrets directly: {run}"
        assert "${{" not in run or "steps." in run, f"{name}: expression in a run: script: {run}"
        for line in run.splitlines():
            assert not re.search(r"\b(echo|printf)\b.*\$\{?\{?\s*(secrets|env)\.", line), line


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_workflow_sets_pulumi_config_or_stores_a_pulumi_token(name: str) -> None:
    text = (WORKFLOWS / f"{name}.yml").read_text()
    assert "pulumi config set" not in text  # secret config comes from the stack's ESC environment
    assert "PULUMI_ACCESS_TOKEN" not in text  # Pulumi Cloud login is by OIDC


def test_every_pulumi_step_runs_the_policy_pack_on_a_known_stack() -> None:
    found = pulumi_jobs()
    assert {(wf, stack) for wf, _, stack, _ in found} == {
        (wf, stack) for wf in ("deploy", "drift", "preview") for stack in STACKS
    }
    for wf, job_name, _, job in found:
        for step in job["steps"]:
            if action(step) == "pulumi/actions":
                assert step["with"]["policyPacks"] == "policies", (wf, job_name)
                assert re.fullmatch(r"\$\{\{ vars\.PULUMI_ORG \}\}/flowchat/(staging|prod)",
                                    step["with"]["stack-name"]), (wf, job_name)  # fmt: skip


@pytest.mark.parametrize(("wf", "job_name", "stack", "job"), pulumi_jobs(),
                         ids=lambda v: v if isinstance(v, str) else "")  # fmt: skip
def test_credentials_come_before_every_pulumi_step(
    wf: str, job_name: str, stack: str, job: dict[str, Any]
) -> None:
    """Pulumi Cloud OIDC, cloud OIDC, cluster credentials, then Pulumi: in that order."""
    assert job["permissions"].get("id-token") == "write"
    pulumi = index_of(job, lambda s: action(s) == "pulumi/actions")
    auth = index_of(job, lambda s: action(s) == "pulumi/auth-actions")
    assert auth < pulumi
    auth_with = job["steps"][auth]["with"]
    assert auth_with["organization"] == "${{ vars.PULUMI_ORG }}"
    assert auth_with["requested-token-type"].startswith("urn:pulumi:token-type:access_token:")
    uses = [action(s) for s in job["steps"]]
    if CLOUD[stack] == "azure":
        login = uses.index("azure/login")
        kubelogin = uses.index("azure/use-kubelogin")
        context = uses.index("azure/aks-set-context")
        assert login < kubelogin < context < pulumi
        assert job["steps"][context]["with"]["use-kubelogin"] == "true"
        assert job["env"]["ARM_USE_OIDC"] == "true"
        for var, source in (("ARM_CLIENT_ID", "AZURE_CLIENT_ID"),
                            ("ARM_TENANT_ID", "AZURE_TENANT_ID"),
                            ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")):  # fmt: skip
            assert job["env"][var] == f"${{{{ vars.{source} }}}}"
        assert "aws-actions/configure-aws-credentials" not in uses
    else:
        aws = uses.index("aws-actions/configure-aws-credentials")
        assert set(job["steps"][aws]["with"]) == {"role-to-assume", "aws-region"}
        eks = index_of(job, lambda s: "aws eks update-kubeconfig" in s.get("run", ""))
        assert aws < eks < pulumi
        run = job["steps"][eks]["run"]
        assert '--kubeconfig "$RUNNER_TEMP/kubeconfig"' in run and "--region" in run
        assert 'echo "KUBECONFIG=$RUNNER_TEMP/kubeconfig" >> "$GITHUB_ENV"' in run
        assert "azure/login" not in uses
    assert not any(s.get("if") for s in job["steps"][: pulumi + 1]), "no step is conditional"


def test_the_eks_credentials_step_exports_the_kubeconfig(tmp_path: Path) -> None:
    """Run the prod cluster-credentials script with a stand-in `aws` that writes a kubeconfig."""
    job = load("deploy")["jobs"]["up-prod"]
    step = job["steps"][index_of(job, lambda s: "aws eks" in s.get("run", ""))]
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\necho "$@" > "$RUNNER_TEMP/args"\n'
        'while [ $# -gt 0 ]; do [ "$1" = --kubeconfig ] && echo kc > "$2"; shift; done\n'
    )
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:/usr/bin:/bin",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ENV": str(tmp_path / "github_env"),
        "CLUSTER": "c1",
        "REGION": "eu-west-1",
    }
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--name c1 --region eu-west-1" in (tmp_path / "args").read_text()
    assert (tmp_path / "github_env").read_text() == f"KUBECONFIG={tmp_path}/kubeconfig\n"
    assert (tmp_path / "kubeconfig").read_text() == "kc\n"
    assert step["env"] == {
        "CLUSTER": "${{ vars.KUBE_CLUSTER }}",
        "REGION": "${{ vars.AWS_REGION }}",
    }


def test_one_concurrency_group_per_stack_shared_by_deploy_rotate_and_drift() -> None:
    groups: dict[str, set[str]] = {stack: set() for stack in STACKS}
    for name in STACK_WORKFLOWS:
        for job_name, job in load(name)["jobs"].items():
            text = yaml.safe_dump(job)
            stacks = [s for s in STACKS if f"flowchat/{s}" in text or f"--stack {s}" in text
                      or job_name.endswith(f"-{s}")]  # fmt: skip
            if not stacks or job_name.startswith("age-"):  # read-only, may overlap
                continue
            (stack,) = stacks
            assert job["concurrency"]["cancel-in-progress"] is False, (name, job_name)
            groups[stack].add(job["concurrency"]["group"])
    assert groups == {stack: {f"flowchat-{stack}"} for stack in STACKS}
    for name in STACK_WORKFLOWS:
        assert "concurrency" not in load(name)  # per-workflow groups would not exclude each other


def test_ci_runs_on_prs_and_is_called_by_deploy() -> None:
    wf = load("ci")
    on = triggers(wf)
    assert "pull_request" in on and "workflow_call" in on
    assert "push" not in on  # main runs it once, inside deploy
    assert any(".ci/run" in s.get("run", "") for s in steps(wf))
    assert "workflow" in (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].splitlines()[0]
    assert (
        "zizmor --offline --min-severity medium .github/workflows"
        in (ROOT / "Makefile").read_text()
    )


def test_deploy_ships_only_a_tested_image_by_digest() -> None:
    wf = load("deploy")
    jobs = wf["jobs"]
    assert triggers(wf)["push"]["branches"] == ["main"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["image"]["needs"] == "ci"
    image = jobs["image"]
    (build,) = [
        s for s in image["steps"] if action(s) == "docker/build-push-action" and s["with"]["push"]
    ]
    assert build["with"]["sbom"] is True  # the SBOM is attached to the pushed image
    assert build["with"]["tags"].startswith("${{ env.IMAGE_REPOSITORY }}:")
    assert image["outputs"]["digest"] == f"${{{{ steps.{build['id']}.outputs.digest }}}}"
    (login,) = [s for s in image["steps"] if action(s) == "docker/login-action"]
    assert login["with"]["registry"] == "ghcr.io"
    # the repository is a variable (set by the bootstrap program), never one organisation's;
    # every pulumi step below passes it, so the stacks pull what this workflow pushes
    assert wf["env"]["IMAGE_REPOSITORY"] == "${{ vars.IMAGE_REPOSITORY }}"
    for job_name in ("up-staging", "preview-prod", "up-prod"):
        job = jobs[job_name]
        assert "image" in job["needs"] or job["needs"] == "image"
        (up,) = [s for s in job["steps"] if action(s) == "pulumi/actions"]
        config_map = yaml.safe_load(up["with"]["config-map"])
        image_config = json.loads(config_map["flowchat:image"]["value"])
        assert image_config == {
            "repository": "${{ env.IMAGE_REPOSITORY }}",
            "tag": "${{ needs.image.outputs.digest }}",
        }
        assert config_map["flowchat:image"]["secret"] is False


def test_deploy_order_one_prod_approval_after_the_prod_diff() -> None:
    jobs = load("deploy")["jobs"]

    def needs(name: str) -> set[str]:
        value = jobs[name].get("needs", [])
        return {value} if isinstance(value, str) else set(value)

    assert needs("up-staging") == {"image"}
    assert needs("smoke-staging") == {"up-staging"}
    assert needs("preview-prod") == {"image", "smoke-staging"}
    assert needs("up-prod") == {"image", "preview-prod"}
    assert needs("smoke-prod") == {"up-prod"}
    # exactly one job waits for the `production` reviewers
    gated = [name for name, job in jobs.items() if job.get("environment") == "production"]
    assert gated == ["up-prod"]
    assert jobs["preview-prod"]["environment"] == "production-readonly"
    assert jobs["smoke-prod"]["environment"] == "production-readonly"
    assert jobs["up-staging"]["environment"] == jobs["smoke-staging"]["environment"] == "staging"
    (preview,) = [s for s in jobs["preview-prod"]["steps"] if action(s) == "pulumi/actions"]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-summary"] is True and preview["with"]["diff"] is True
    for job_name, stack in (("up-staging", "staging"), ("up-prod", "prod")):
        steps_ = jobs[job_name]["steps"]
        (up,) = [s for s in steps_ if action(s) == "pulumi/actions"]
        assert up["with"]["command"] == "up"
        assert up["with"]["stack-name"].endswith(f"/flowchat/{stack}")
        rollout = index_of(jobs[job_name], lambda s: "rollout status" in s.get("run", ""))
        assert steps_.index(up) < rollout


SMOKE_JOBS = [("deploy", "smoke-staging"), ("deploy", "smoke-prod"), ("smoke", "smoke")]


@pytest.mark.parametrize(("name", "job_name"), SMOKE_JOBS)
def test_smoke_jobs_are_bound_to_their_environment(name: str, job_name: str) -> None:
    job = load(name)["jobs"][job_name]
    assert job["environment"]
    assert "production'" not in str(job["environment"]).replace("production-readonly", "")
    assert job["permissions"] == {"contents": "read"}
    (step,) = [s for s in job["steps"] if "ops.smoke" in s.get("run", "")]
    assert step["run"] == 'python -m ops.smoke --base-url "$BASE_URL"'
    assert step["env"]["FLOWCHAT_API_KEY"] == "${{ secrets.SMOKE_API_KEY }}"
    assert re.search(r"vars\.(STAGING|PROD)_URL", step["env"]["BASE_URL"])


def test_schedules() -> None:
    assert triggers(load("smoke"))["schedule"] == [{"cron": "*/30 * * * *"}]
    assert triggers(load("rotate-flow-credentials"))["schedule"] == [{"cron": "0 6 * * 1"}]
    assert triggers(load("drift"))["schedule"] == [{"cron": "0 5 * * *"}]
    for name in ("smoke", "rotate-flow-credentials", "drift"):
        assert "workflow_dispatch" in triggers(load(name))


@pytest.mark.parametrize(("name", "label", "needs"), [
    ("smoke", "smoke-failure", "smoke"),
    ("drift", "drift", ["drift-staging", "drift-prod"]),
    ("rotate-flow-credentials", "credentials-rotation", ["age-staging", "age-prod"]),
])  # fmt: skip
def test_failures_report_one_issue_and_fail(name: str, label: str, needs: Any) -> None:
    report = load(name)["jobs"]["report"]
    assert report["needs"] == needs
    assert "failure" in report["if"]
    assert report["permissions"]["issues"] == "write"
    script = report["steps"][0]["with"]["script"]
    assert f"'{label}'" in script and "core.setFailed" in script
    assert "issues.createComment" in script  # updates the open issue rather than adding another


def test_schedule_checks_the_credentials_age_and_never_writes() -> None:
    jobs = load("rotate-flow-credentials")["jobs"]
    for stack, environment in (("staging", "staging"), ("prod", "production-readonly")):
        age = jobs[f"age-{stack}"]
        assert age["if"] == "github.event_name == 'schedule'"
        assert age["environment"] == environment
        runs = [s.get("run", "") for s in age["steps"]]
        assert f"python -m ops.secrets age --stack {stack}" in runs
        (command,) = [r for r in runs if "ops.secrets" in r]
        parsed = ops_secrets.build_parser().parse_args(command.split()[3:])
        assert (parsed.command, parsed.stack) == ("age", stack)
        assert not any("rotate_credentials" in r for r in runs)
        assert "secrets." not in yaml.safe_dump(age)  # no value reaches the scheduled check
        rotate = jobs[f"rotate-{stack}"]
        assert rotate["if"] == "github.event_name == 'workflow_dispatch'"
    assert "report" in jobs and "schedule" in jobs["report"]["if"]
    header = (WORKFLOWS / "rotate-flow-credentials.yml").read_text().split("\nname:", 1)[0]
    assert "ops.secrets.ROTATION_PERIOD_DAYS" in header  # the period is named, not retyped


def test_rotation_runs_staging_then_prod_with_secrets_from_the_environment() -> None:
    jobs = load("rotate-flow-credentials")["jobs"]
    assert jobs["rotate-prod"]["needs"] == "rotate-staging"
    assert jobs["rotate-prod"]["environment"] == "production"
    assert jobs["rotate-staging"]["environment"] == "staging"
    for name, stack in (("rotate-staging", "staging"), ("rotate-prod", "prod")):
        (step,) = [s for s in jobs[name]["steps"] if "ops.rotate_credentials" in s.get("run", "")]
        assert f"--stack {stack}" in step["run"]
        assert step["env"]["FLOW_AGENT_SECRET"] == "${{ secrets.FLOW_AGENT_SECRET }}"
        assert step["env"]["ADMIN_TOKEN"] == "${{ secrets.ADMIN_TOKEN }}"
        kube = index_of(jobs[name], lambda s: "Cluster credentials" in s.get("name", ""))
        assert kube < jobs[name]["steps"].index(step)


def test_drift_prod_runs_read_only_without_the_reviewer_gate() -> None:
    jobs = load("drift")["jobs"]
    assert jobs["drift-prod"]["environment"] == "production-readonly"
    assert jobs["drift-staging"]["environment"] == "staging"
    # the header documents what the read-only environment needs
    header = (WORKFLOWS / "drift.yml").read_text().split("\nname:", 1)[0]
    for needed in ("production-readonly", "Reader", "AWS_ROLE_ARN", "AZURE_CLIENT_ID", "OIDC"):
        assert needed in header, needed
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    assert "production-readonly" in runbook


def test_drift_refreshes_and_expects_no_changes() -> None:
    wf = load("drift")
    for stack in STACKS:
        (step,) = [
            s for s in wf["jobs"][f"drift-{stack}"]["steps"] if action(s) == "pulumi/actions"
        ]
        assert step["with"]["command"] == "preview"
        assert step["with"]["refresh"] is True
        assert step["with"]["expect-no-changes"] is True
    assert "drift" in wf["jobs"]["report"]["steps"][0]["with"]["script"]


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
        if not name.startswith("rotate-"):
            continue
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


def test_preview_is_fork_safe_and_fails_on_mandatory_violations() -> None:
    wf = load("preview")
    on = triggers(wf)
    assert "pull_request_target" not in on
    paths = on["pull_request"]["paths"]
    for wanted in ("Pulumi*.yaml", "stacks/**", "policies/**", "platform_stack/**", "docs/**"):
        assert wanted in paths
    offline = wf["jobs"]["offline"]
    refs = [
        s["with"]["ref"]
        for s in offline["steps"]
        if s.get("uses", "").startswith("actions/checkout@")
    ]
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
    for stack in STACKS:
        pulumi = wf["jobs"][f"pulumi-{stack}"]
        assert "vars.PULUMI_PREVIEW_ENABLED == 'true'" in pulumi["if"]
        (step,) = [s for s in pulumi["steps"] if "pulumi/actions" in s.get("uses", "")]
        assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True


# Runs a module as `python -m` does and writes every file it opened (audit events) as JSON.
READS_TRACER = """
import json, os, runpy, sys
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.add(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(hook)
out, module, *argv = sys.argv[1:]
sys.argv = [module, *argv]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    with open(out, "w") as f:
        json.dump(sorted(opened), f)
"""


def _github_glob(pattern: str) -> re.Pattern[str]:
    """A workflow `paths` filter: `**` crosses directories, `*` and `?` do not."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))


def _repo_file(path: str, tracked: set[str]) -> str | None:
    """The tracked file a read stands for (a module's bytecode stands for its source)."""
    real = Path(path)
    if real.parent.name == "__pycache__":
        real = real.parent.parent / (real.name.split(".", 1)[0] + ".py")
    try:
        name = real.relative_to(ROOT.resolve()).as_posix()
    except ValueError:
        return None
    return name if name in tracked else None


def test_preview_runs_on_every_file_its_steps_read(tmp_path: Path) -> None:
    """Every `python -m` module of preview.yml runs here (offline, as its step runs it) under an
    audit hook: each tracked file it reads, each lock it installs and the project itself must
    be in `on.pull_request.paths`, or a PR changing only that file would get no preview."""
    wf = load("preview")
    paths = [_github_glob(p) for p in triggers(wf)["pull_request"]["paths"]]
    runs = [
        s["run"]
        for name in ("offline", "platform")
        for s in wf["jobs"][name]["steps"]
        if "run" in s
    ]
    modules = {m for run in runs for m in re.findall(r"python -m ([\w.]+)", run)} - {"pip"}
    out = tmp_path / "out"
    out.mkdir()
    stack_files = sorted(ROOT.glob("Pulumi.*.yaml"))
    platform_files = sorted((ROOT / "platform_stack").glob("Pulumi.*.yaml"))
    commands = [
        *[
            ("stacks.preview", ["--stack", f.name.split(".")[1], "--json", str(out / "s.json")])
            for f in stack_files
        ],
        *[("platform_stack.preview", ["--stack", f.name.split(".")[1]]) for f in platform_files],
        (
            "ops.preview_diff",
            [str(out / "s.json"), str(out / "s.json"), "--output", str(out / "c")],
        ),
        ("ops.documents", ["sync", "--dry-run", "--against", "docs", "docs"]),
    ]
    assert {m for m, _ in commands} == modules  # a new module in the workflow is run here too
    tracked = set(
        subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    read: set[str] = {".github/workflows/preview.yml", "pyproject.toml"}  # `pip install -e`
    read |= {m.removeprefix("head/") for run in runs for m in re.findall(r"-r (\S+\.lock)", run)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i, (module, argv) in enumerate(commands):
        log = tmp_path / f"reads-{i}.json"
        done = subprocess.run(
            [sys.executable, "-c", READS_TRACER, str(log), module, *argv],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, (module, argv, done.stdout[-2000:], done.stderr[-2000:])
        read |= {f for p in json.loads(log.read_text()) if (f := _repo_file(p, tracked))}
    assert any(f.startswith("platform_stack/") for f in read)  # the hook saw the program
    assert sorted(f for f in read if not any(p.fullmatch(f) for p in paths)) == []


def test_the_platform_preview_covers_every_platform_stack() -> None:
    (step,) = [
        s
        for s in load("preview")["jobs"]["platform"]["steps"]
        if "platform_stack.preview" in s.get("run", "")
    ]
    loop = re.search(r"for stack in ([\w ]+); do", step["run"])
    assert loop is not None
    stacks = {f.name.split(".")[1] for f in (ROOT / "platform_stack").glob("Pulumi.*.yaml")}
    assert set(loop.group(1).split()) == stacks
    assert step["run"].rstrip().endswith("exit $status")


def _run_index(job: dict[str, Any], text: str) -> int:
    return index_of(job, lambda s: text in s.get("run", ""))


def test_the_image_checks_itself_before_it_is_pushed_then_is_attested() -> None:
    """The image job builds without pushing, runs `python -m app.selfcheck --read-only-root` in
    the built image on a read-only root, then pushes (the step whose digest is deployed), then
    attests the build provenance of exactly that digest."""
    image = load("deploy")["jobs"]["image"]
    builds = [i for i, s in enumerate(image["steps"]) if action(s) == "docker/build-push-action"]
    local, pushed = builds
    assert image["steps"][local]["with"]["push"] is False
    assert image["steps"][local]["with"]["load"] is True
    tag = image["steps"][local]["with"]["tags"]
    selfcheck = _run_index(image, "python -m app.selfcheck --read-only-root")
    run = image["steps"][selfcheck]["run"]
    assert "docker run" in run and "--read-only" in run and tag in run
    assert local < selfcheck < pushed
    assert image["steps"][pushed]["with"]["push"] is True
    attest = index_of(image, lambda s: action(s) == "actions/attest-build-provenance")
    assert pushed < attest
    step = image["steps"][attest]["with"]
    assert step["subject-name"] == "${{ env.IMAGE_REPOSITORY }}"
    assert (
        step["subject-digest"] == f"${{{{ steps.{image['steps'][pushed]['id']}.outputs.digest }}}}"
    )
    assert step["push-to-registry"] is True


def _image_step(name: str) -> dict[str, Any]:
    (step,) = [s for s in load("deploy")["jobs"]["image"]["steps"] if s.get("name") == name]
    return step


def test_the_pushed_image_must_be_the_self_checked_one_before_any_attestation() -> None:
    image = load("deploy")["jobs"]["image"]
    names = [s.get("name") for s in image["steps"]]
    same = names.index("The pushed image is the self-checked one")
    builds = [i for i, s in enumerate(image["steps"]) if action(s) == "docker/build-push-action"]
    attests = [i for i, s in enumerate(image["steps"]) if action(s).startswith("actions/attest")]
    assert builds[-1] < same < min(attests) and len(attests) == 2
    env = image["steps"][same]["env"]
    local, pushed = (image["steps"][i]["id"] for i in builds)
    assert env["CHECKED"] == f"${{{{ steps.{local}.outputs.imageid }}}}"
    assert env["DIGEST"] == f"${{{{ steps.{pushed}.outputs.digest }}}}"


def _run_with_fake_registry(tmp_path: Path, run: str, env: dict[str, str], config: str) -> int:
    """Run a step's script with a `docker` that serves an index (image + attestation manifest)
    whose image manifest names `config`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    index = {
        "manifests": [
            {"digest": "sha256:img", "platform": {"architecture": "amd64", "os": "linux"}},
            {
                "digest": "sha256:att",
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ]
    }
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *@sha256:img*) echo '{json.dumps({'config': {'digest': config}})}';;\n"
        f"  *) echo '{json.dumps(index)}';;\n"
        "esac\n"
    )
    docker.chmod(0o755)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "IMAGE_REPOSITORY": "ghcr.io/o/r", **env},
    )  # fmt: skip
    return done.returncode


def test_the_identity_check_fails_when_the_registry_holds_another_image(tmp_path: Path) -> None:
    step = _image_step("The pushed image is the self-checked one")
    env = {"CHECKED": "sha256:" + "a" * 64, "DIGEST": "sha256:index"}
    assert _run_with_fake_registry(tmp_path, step["run"], env, "sha256:" + "a" * 64) == 0
    assert _run_with_fake_registry(tmp_path, step["run"], env, "sha256:" + "b" * 64) != 0
    assert _run_with_fake_registry(tmp_path, step["run"], {**env, "CHECKED": ""}, "") != 0


def test_the_sbom_of_the_pushed_digest_is_attested_and_its_type_exported() -> None:
    image = load("deploy")["jobs"]["image"]
    sbom = _image_step("The SBOM of the pushed digest (buildkit's SPDX document)")
    (attest,) = [s for s in image["steps"] if action(s) == "actions/attest-sbom"]
    pushed = [s for s in image["steps"] if action(s) == "docker/build-push-action"][-1]
    assert pushed["with"]["sbom"] is True
    digest = f"${{{{ steps.{pushed['id']}.outputs.digest }}}}"
    assert sbom["env"]["DIGEST"] == digest and "$IMAGE_REPOSITORY@$DIGEST" in sbom["run"]
    assert attest["with"]["subject-name"] == "${{ env.IMAGE_REPOSITORY }}"
    assert attest["with"]["subject-digest"] == digest
    assert attest["with"]["push-to-registry"] is True
    path = attest["with"]["sbom-path"].replace("${{ runner.temp }}", "$RUNNER_TEMP")
    assert f'> "{path}"' in sbom["run"]
    assert image["steps"].index(sbom) < image["steps"].index(attest)
    assert image["outputs"]["sbom-predicate-type"] == (
        f"${{{{ steps.{sbom['id']}.outputs.predicate-type }}}}"
    )


def test_the_sbom_step_exports_the_predicate_type_attest_sbom_signs(tmp_path: Path) -> None:
    """actions/attest builds an SPDX predicate type as https://spdx.dev/Document/v<version>."""
    sbom = _image_step("The SBOM of the pushed digest (buildkit's SPDX document)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        '#!/bin/sh\necho \'{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT"}\'\n'
    )
    docker.chmod(0o755)
    out = tmp_path / "output"
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", sbom["run"]],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "IMAGE_REPOSITORY": "r", "DIGEST": "sha256:x",
             "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text().split() == ["predicate-type=https://spdx.dev/Document/v2.3"]
    assert json.loads((tmp_path / "sbom.spdx.json").read_text())["spdxVersion"] == "SPDX-2.3"
    docker.write_text("#!/bin/sh\necho null\n")  # no SBOM attached: the job stops
    assert subprocess.run(["bash", "-eo", "pipefail", "-c", sbom["run"]], cwd=tmp_path,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "RUNNER_TEMP": str(tmp_path),
                               "GITHUB_OUTPUT": str(out)}).returncode != 0  # fmt: skip


@pytest.mark.parametrize("job_name", ["up-staging", "up-prod"])
def test_deploy_verifies_the_attestation_before_pulumi_up(job_name: str) -> None:
    job = load("deploy")["jobs"][job_name]
    verify = _run_index(job, "gh attestation verify")
    up = index_of(job, lambda s: action(s) == "pulumi/actions" and s["with"]["command"] == "up")
    assert verify < up
    # and before any cloud credential is obtained for an image that may not be ours
    oidc = {"pulumi/auth-actions", "azure/login", "aws-actions/configure-aws-credentials"}
    assert verify < index_of(job, lambda s: action(s) in oidc)
    step = job["steps"][verify]
    assert '"oci://$IMAGE_REPOSITORY@$DIGEST"' in step["run"]
    assert '--repo "$GITHUB_REPOSITORY"' in step["run"]
    assert "--signer-workflow" in step["run"]  # built by deploy.yml, not any workflow of the repo
    assert step["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    # the SBOM attestation too (gh checks provenance unless given another predicate type)
    verifies = step["run"].split("gh attestation verify")[1:]
    assert len(verifies) == 2
    assert '--predicate-type "$SBOM_PREDICATE_TYPE"' in verifies[1]
    assert all("--signer-workflow" in v for v in verifies)
    assert step["env"]["SBOM_PREDICATE_TYPE"] == "${{ needs.image.outputs.sbom-predicate-type }}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_python_install_is_hash_locked(name: str) -> None:
    """pip installs only from requirements/*.lock with --require-hashes, plus the project itself
    with --no-deps (and no build isolation: its backend comes from the lock)."""
    for step in steps(load(name)):
        for line in step.get("run", "").splitlines():
            if "pip install" not in line:
                continue
            locked = re.search(
                r"pip install -q --require-hashes (--no-deps )?"
                r"-r (\S+/)?requirements/[\w-]+\.lock$",
                line,
            )
            project = re.search(r"pip install -q --no-deps --no-build-isolation -e \S+$", line)
            assert locked or project, f"{name}: {line.strip()}"


def test_deploy_syncs_the_knowledge_base_after_pulumi_up_and_before_smoke() -> None:
    """Issue 21: a new stack's first smoke test finds its documents because deploy synced them."""
    deploy = load("deploy")
    for stack in ("staging", "prod"):
        up, smoke = f"up-{stack}", f"smoke-{stack}"
        steps = deploy["jobs"][up]["steps"]
        names = [s.get("name", "") for s in steps]
        sync = names.index("Deploy the knowledge base (docs/)")
        assert sync > names.index("pulumi up") and sync > names.index("Wait for rollout")
        assert f"python -m ops.documents sync --stack {stack} docs" in steps[sync]["run"]
        assert up in str(deploy["jobs"][smoke]["needs"])


WAIT_STEP = "Wait for the hostname and its TLS certificate"
FAKE_KUBECTL = """#!/bin/sh
# kubectl -n NS get|describe KIND NAME [-o jsonpath=...]
[ "$2" = "$FAKE_NAMESPACE" ] || exit 1
case "$3 $4 $5" in
  "get ingress $FAKE_INGRESS") echo "$FAKE_HOST" ;;
  "describe certificate $FAKE_CERTIFICATE") echo "Events: order pending" ;;
  *) echo "Error from server (NotFound)" >&2; exit 1 ;;
esac
"""
FAKE_GETENT = """#!/bin/sh
for h in $FAKE_RESOLVES; do [ "$h" = "$2" ] && echo "203.0.113.7 $2" && exit 0; done
exit 2
"""
# curl's exit 60: the peer's certificate cannot be verified (the controller's default one)
FAKE_CURL = """#!/bin/sh
for arg; do url=$arg; done
[ "$url" = "https://$FAKE_SERVES_TLS/" ] && exit 0
echo "curl: (60) SSL certificate problem: self-signed certificate" >&2
exit 60
"""


def _run_wait_step(step: dict[str, Any], tmp_path: Path, **fake: str) -> Any:
    """The step's script as GitHub runs it (bash -eo pipefail), with kubectl, getent and curl on
    PATH answering from `fake` (the Ingress's host, what resolves, what serves a trusted
    certificate)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("kubectl", FAKE_KUBECTL), ("getent", FAKE_GETENT), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        **{k: str(v) for k, v in step["env"].items()},
        "WAIT_SECONDS": "0",  # one look: the condition holds now or the step fails
        **{f"FAKE_{k.upper()}": v for k, v in fake.items()},
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_deploy_waits_for_the_hostname_and_certificate_before_using_the_url(
    stack: str, tmp_path: Path
) -> None:
    """Issue 19: on a first deploy the DNS record and the certificate come from the Ingress
    pulumi up creates; the knowledge-base sync and the smoke test wait for both, bounded."""
    from app.contracts import API_DEPLOYMENT, APP_NAME

    deploy = load("deploy")
    steps = deploy["jobs"][f"up-{stack}"]["steps"]
    names = [s.get("name", "") for s in steps]
    wait = names.index(WAIT_STEP)
    assert names.index("Wait for rollout") < wait < names.index("Deploy the knowledge base (docs/)")
    step = steps[wait]
    # the Ingress stacks.routing creates, and the Certificate cert-manager names after its tls
    # secretName
    assert step["env"]["NAMESPACE"] == f"flowchat-{stack}"
    assert step["env"]["INGRESS"] == API_DEPLOYMENT
    assert step["env"]["CERTIFICATE"] == f"{APP_NAME}-tls"
    assert 0 < int(step["env"]["WAIT_SECONDS"]) <= 30 * 60
    fake = {
        "namespace": f"flowchat-{stack}",
        "ingress": API_DEPLOYMENT,
        "certificate": f"{APP_NAME}-tls",
        "host": "chat.flowchat.test",
    }
    host = fake["host"]
    ready = _run_wait_step(step, tmp_path, **fake, resolves=host, serves_tls=host)
    assert ready.returncode == 0, ready.stderr + ready.stdout
    for why, expected in (
        ({"resolves": "", "serves_tls": host}, f"::error::after 0 s: {host} does not resolve"),
        (
            {"resolves": host, "serves_tls": ""},
            f"::error::after 0 s: {host} serves no trusted certificate "
            f"(certificate {APP_NAME}-tls not issued)",
        ),
    ):
        result = _run_wait_step(step, tmp_path, **fake, **why)
        assert result.returncode == 1, why
        assert expected in result.stdout
        assert "order pending" in result.stdout  # cert-manager's account of why


def test_preview_prints_the_documents_plan() -> None:
    steps = load("preview")["jobs"]["offline"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "Knowledge base changes (docs/)"]
    assert "python -m ops.documents sync --dry-run --against ../base/docs docs" in step["run"]


def test_incidents_workflow_lists_the_operations_log_weekly_with_read_only_issues() -> None:
    workflow = load("incidents")
    triggers = workflow.get("on") or workflow.get(True)
    assert triggers["schedule"][0]["cron"].endswith("* * 1")  # weekly, on Mondays
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"] == "incidents"
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "issues": "read"}
    runs = [s for s in job["steps"] if "run" in s]
    assert "--require-hashes -r requirements/ops.lock" in runs[0]["run"]
    (listing,) = [s for s in runs if "ops.incident" in s["run"]]
    assert listing["run"] == "python -m ops.incident list-overdue"
    assert listing["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
