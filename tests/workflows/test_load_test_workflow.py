"""The load-test workflow: dispatch only, refuses prod without the explicit input, runs the
locustfile with its inputs from the environment, and passes zizmor with no high/medium finding."""

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

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "load-test.yml"
ZIZMOR = Path(sys.executable).with_name("zizmor")


def _load() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _guard_script() -> str:
    (step,) = _load()["jobs"]["guard"]["steps"]
    return step["run"]


def test_dispatch_only_with_the_inputs_and_a_prod_opt_in() -> None:
    wf = _load()
    on = wf.get("on", wf.get(True))
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert {"stack", "duration", "users", "allow_prod"} <= set(inputs)
    assert inputs["stack"]["default"] == "staging"
    assert inputs["allow_prod"]["default"] is False


def test_the_load_job_waits_for_the_guard_and_is_bound_to_the_stacks_environment() -> None:
    job = _load()["jobs"]["load"]
    assert job["needs"] == "guard"
    assert job["environment"] == "${{ inputs.stack == 'prod' && 'production' || 'staging' }}"
    assert job["permissions"] == {"contents": "read"}
    run = next(s for s in job["steps"] if s.get("name") == "Load test")
    assert "locust -f bench/locustfile.py --headless" in run["run"]
    assert "$GITHUB_STEP_SUMMARY" in run["run"]
    assert run["env"]["FLOWCHAT_API_KEY"] == "${{ secrets.LOAD_TEST_API_KEY }}"
    assert "${{" not in run["run"]  # inputs reach the script through the environment only


@pytest.mark.parametrize(
    ("stack", "allow", "duration", "users", "ramp", "refused"),
    [
        ("staging", "false", "300", "20", "60", None),
        ("prod", "false", "300", "20", "60", "refusing to load prod"),
        ("prod", "true", "300", "20", "60", None),
        ("staging", "false", "5", "20", "0", "duration must be"),
        ("staging", "false", "300", "0", "60", "users must be"),
        ("staging", "false", "60", "5", "120", "ramp must be"),
        ("staging", "false", "x; id", "5", "1", "duration must be"),
    ],
)
def test_the_guard_refuses_prod_and_bad_inputs(
    stack: str, allow: str, duration: str, users: str, ramp: str, refused: str | None
) -> None:
    env = {
        **os.environ,
        "STACK": stack,
        "ALLOW_PROD": allow,
        "DURATION": duration,
        "USERS": users,
        "RAMP": ramp,
    }
    done = subprocess.run(
        ["bash", "-e", "-c", _guard_script()], env=env, capture_output=True, text=True
    )
    if refused is None:
        assert done.returncode == 0, done.stdout
    else:
        assert done.returncode == 1
        assert refused in done.stdout


# the pins the other workflows use (issue 9's review recorded where each SHA was read)
PINS = {
    "actions/checkout": "df4cb1c069e1874edd31b4311f1884172cec0e10 # v6.0.3",
    "actions/setup-python": "a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0",
}


def test_actions_are_pinned_by_full_sha_and_keep_no_credentials() -> None:
    used = re.findall(r"uses: ([\w./-]+)@(.+)", WORKFLOW.read_text())
    assert used
    for name, ref in used:
        assert PINS.get(name) == ref.strip(), f"{name}@{ref}"
    checkout = next(s for s in _load()["jobs"]["load"]["steps"] if "checkout" in s.get("uses", ""))
    assert checkout["with"]["persist-credentials"] is False


def test_zizmor_finds_nothing_high_or_medium() -> None:
    done = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    findings = json.loads(done.stdout)
    severe = [f["ident"] for f in findings if f["determinations"]["severity"] in ("High", "Medium")]
    assert severe == []
