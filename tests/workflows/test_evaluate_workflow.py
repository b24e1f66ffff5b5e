"""The evaluate workflow as GitHub runs it: the PR check against the emulator-backed service
and the committed baseline, the nightly run against staging with the real gateway."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from app.local import run as run_local
from ops import evaluate
from platform_stack.outputs import PUSHGATEWAY_PORT, PUSHGATEWAY_SERVICE, PUSHGATEWAY_URL

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "evaluate.yml").read_text())
JOBS = WORKFLOW["jobs"]


def _step(job: str, name: str) -> dict[str, Any]:
    return next(s for s in JOBS[job]["steps"] if s.get("name") == name)


def _evaluate_argv(script: str, env: dict[str, str]) -> list[str]:
    """The arguments of the `python -m ops.evaluate` line, variables expanded as bash would."""
    joined = script.replace("\\\n", " ")
    line = next(x for x in joined.splitlines() if "python -m ops.evaluate" in x)
    line = line.split("python -m ops.evaluate", 1)[1].split("||", 1)[0]
    for name, value in env.items():
        line = line.replace(f'"${name}"', value).replace(f"${name}", value)
    return shlex.split(line)


def test_triggers_and_least_privilege() -> None:
    on = WORKFLOW.get("on", WORKFLOW.get(True))
    assert set(on) == {"pull_request", "schedule", "workflow_dispatch"}
    assert "pull_request_target" not in on
    assert WORKFLOW["permissions"] == {"contents": "read"}
    assert JOBS["pull-request"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    # id-token: the Azure login that lets the job port-forward to the in-cluster Pushgateway
    assert JOBS["staging"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert JOBS["pull-request"]["if"] == "github.event_name == 'pull_request'"
    assert JOBS["staging"]["if"] == "github.event_name != 'pull_request'"
    assert JOBS["staging"]["environment"] == "staging"


def test_the_pr_check_compares_with_the_committed_baseline_and_fails_after_commenting() -> None:
    env = WORKFLOW["env"]
    assert (ROOT / env["QUESTIONS"]).is_file() and (ROOT / env["BASELINE"]).is_file()
    step = _step("pull-request", "Evaluate against the committed baseline")
    args = evaluate.build_parser().parse_args(_evaluate_argv(step["run"], env))
    assert args.baseline == Path(env["BASELINE"]) and args.questions == Path(env["QUESTIONS"])
    assert args.markdown == Path("out/evaluation.md")
    assert "|| status=$?" in step["run"] and 'status=$status" >> "$GITHUB_OUTPUT' in step["run"]
    names = [s.get("name") for s in JOBS["pull-request"]["steps"]]
    comment = names.index("Post or update the PR comment")
    fail = names.index("Fail on a drop beyond the tolerance or a failed question")
    assert comment < fail == len(names) - 1
    assert "steps.evaluate.outputs.status != '0'" in JOBS["pull-request"]["steps"][fail]["if"]
    script = JOBS["pull-request"]["steps"][comment]["with"]["script"]
    assert "process.env.MARKER" in script and "updateComment" in script


def test_the_service_starts_as_make_run_does_and_is_awaited() -> None:
    start = _step("pull-request", "Start the service (emulator-backed, docs/ ingested)")["run"]
    assert "python -m app.local --port 8000" in start
    ready = re.search(r'grep -q "([^"]+)"', start).group(1)
    assert ready in Path(run_local.__file__).read_text()
    assert _step("pull-request", "Stop the service")["if"] == "${{ always() }}"


def test_the_nightly_run_uses_the_real_gateway_and_pushes_the_scores() -> None:
    step = _step("staging", "Evaluate staging and push the scores")
    env = step["env"]
    for name in ("FLOW_TENANT", "FLOW_AGENT", "FLOW_AGENT_SECRET"):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    assert env["FLOW_BASE_URL"] == "${{ vars.FLOW_BASE_URL }}"
    assert env["FLOWCHAT_API_KEY"] == "${{ secrets.SMOKE_API_KEY }}"
    job_env = JOBS["staging"]["env"]
    assert job_env["PUSHGATEWAY_URL"] == "${{ vars.PUSHGATEWAY_URL }}"
    args = evaluate.build_parser().parse_args(
        _evaluate_argv(step["run"], {**WORKFLOW["env"], **job_env, "BASE_URL": "https://staging"})
    )
    assert (args.pushgateway, args.stack, args.baseline) == (
        f"http://127.0.0.1:{job_env['PUSHGATEWAY_LOCAL_PORT']}",
        "staging",
        None,
    )
    for line in step["run"].splitlines():  # secrets only ever reach the command's environment
        assert "secrets." not in line


def _bash(
    script: str, env: dict[str, str], path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = {"PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"], **env}
    return subprocess.run(
        ["bash", "-e", "-c", script], env=full, capture_output=True, text=True, timeout=60
    )


def test_the_nightly_run_fails_without_a_pushgateway() -> None:
    """Scores pushed nowhere reach no panel and no alert: an unset PUSHGATEWAY_URL fails the job
    in its first step (it used to warn and go on)."""
    names = [s.get("name") for s in JOBS["staging"]["steps"]]
    assert names[0] == "Require the Pushgateway"
    script = _step("staging", "Require the Pushgateway")["run"]
    unset = _bash(script, {"PUSHGATEWAY_URL": ""})
    assert unset.returncode == 1 and "::error::PUSHGATEWAY_URL is not set" in unset.stdout
    assert _bash(script, {"PUSHGATEWAY_URL": PUSHGATEWAY_URL}).returncode == 0


def test_the_runner_reaches_the_platforms_pushgateway_through_a_port_forward(
    tmp_path: Path,
) -> None:
    """The platform exports an in-cluster address; the step forwards exactly that service and
    port to the local port the push goes to (kubectl and curl stand in, recording their calls;
    curl is refused until the forward has started, as the real one is)."""
    calls = tmp_path / "calls"
    fakes = {
        "kubectl": f'echo "kubectl $*" >> "{calls}"',
        "curl": f'grep -q "^kubectl" "{calls}" 2>/dev/null || exit 7\necho "curl $*" >> "{calls}"',
    }
    for tool, body in fakes.items():
        fake = tmp_path / tool
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    step = _step("staging", "Forward the Pushgateway to the runner")
    local = JOBS["staging"]["env"]["PUSHGATEWAY_LOCAL_PORT"]
    env = {"PUSHGATEWAY_URL": PUSHGATEWAY_URL, "PUSHGATEWAY_LOCAL_PORT": local}
    done = _bash(step["run"], {**env, "RUNNER_TEMP": str(tmp_path)}, path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = calls.read_text().splitlines()
    forward = next(line for line in lines if line.startswith("kubectl"))
    assert forward.split() == [
        "kubectl",
        "port-forward",
        "--namespace",
        "monitoring",
        f"service/{PUSHGATEWAY_SERVICE}",
        f"{local}:{PUSHGATEWAY_PORT}",
    ]
    assert f"curl -fsS -o /dev/null http://127.0.0.1:{local}/-/ready" in lines
    names = [s.get("name") for s in JOBS["staging"]["steps"]]
    credentials = names.index("Cluster credentials")
    forward_at = names.index("Forward the Pushgateway to the runner")
    assert credentials < forward_at < names.index("Evaluate staging and push the scores")


def test_the_nightly_keeps_its_json_as_an_artifact() -> None:
    """The runbook compares a drop with the last good run's JSON: every run uploads it."""
    evaluate_step = _step("staging", "Evaluate staging and push the scores")
    args = evaluate.build_parser().parse_args(
        _evaluate_argv(evaluate_step["run"], {**WORKFLOW["env"], **JOBS["staging"]["env"]})
    )
    names = [s.get("name") for s in JOBS["staging"]["steps"]]
    upload = JOBS["staging"]["steps"][names.index("Evaluate staging and push the scores") + 1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert Path(upload["with"]["path"]) == args.json
    assert "!cancelled()" in upload["if"]  # a run that found a drop is kept too
