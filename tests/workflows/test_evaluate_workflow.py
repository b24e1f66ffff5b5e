"""The evaluate workflow as GitHub runs it: the PR check against the emulator-backed service
and the committed baseline, the nightly run against staging with the real gateway."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from app.local import run as run_local
from ops import evaluate

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
    line = line.replace('"${push[@]}"', "--pushgateway http://pushgateway:9091 --stack staging")
    for name, value in env.items():
        line = line.replace(f'"${name}"', value).replace(f"${name}", value)
    return shlex.split(line)


def test_triggers_and_least_privilege() -> None:
    on = WORKFLOW.get("on", WORKFLOW.get(True))
    assert set(on) == {"pull_request", "schedule", "workflow_dispatch"}
    assert "pull_request_target" not in on
    assert WORKFLOW["permissions"] == {"contents": "read"}
    assert JOBS["pull-request"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert JOBS["staging"]["permissions"] == {"contents": "read"}
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
    assert env["PUSHGATEWAY_URL"] == "${{ vars.PUSHGATEWAY_URL }}"
    assert env["FLOWCHAT_API_KEY"] == "${{ secrets.SMOKE_API_KEY }}"
    args = evaluate.build_parser().parse_args(
        _evaluate_argv(step["run"], {**WORKFLOW["env"], "BASE_URL": "https://staging"})
    )
    assert (args.pushgateway, args.stack, args.baseline) == (
        "http://pushgateway:9091",
        "staging",
        None,
    )
    for line in step["run"].splitlines():  # secrets only ever reach the command's environment
        assert "secrets." not in line
