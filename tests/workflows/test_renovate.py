"""renovate.json: valid against Renovate's schema (check-jsonschema's builtin vendor.renovate),
and its managers actually find every pin: the locks, the image digests, the Helm charts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
CONFIG = json.loads((ROOT / "renovate.json").read_text())
DIGEST_REF = re.compile(r"[a-z0-9][a-z0-9./-]*:[\w.-]+@sha256:[0-9a-f]{64}")


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.renovate", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript) regex in Python syntax: named groups are (?<x>...) there."""
    return re.compile(pattern.replace("(?<", "(?P<"))


def _file_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    return [re.compile(p.strip("/")) for p in patterns]


def _custom(datasource: str) -> dict:
    (manager,) = [m for m in CONFIG["customManagers"] if m["datasourceTemplate"] == datasource]
    return manager


def test_config_is_valid_and_a_broken_one_is_not(tmp_path: Path) -> None:
    done = _validate(ROOT / "renovate.json")
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "renovate.json"
    broken.write_text(json.dumps({**CONFIG, "prConcurrentLimit": "eight"}))
    assert _validate(broken).returncode != 0


def test_every_ecosystem_is_updated_weekly_and_grouped() -> None:
    assert set(CONFIG["enabledManagers"]) == {
        "pip-compile", "github-actions", "dockerfile", "docker-compose", "custom.regex",
    }  # fmt: skip
    assert CONFIG["schedule"] == ["before 6am on monday"]
    grouped = {r["groupName"] for r in CONFIG["packageRules"] if "groupName" in r}
    assert len(grouped) == 4


def _regexes(node: object) -> list[str]:
    """Every regex of the config: `matchStrings` and the `/.../` file patterns."""
    if isinstance(node, dict):
        return [
            r
            for key, value in node.items()
            for r in (value if key == "matchStrings" else _regexes(value))
        ]
    if isinstance(node, list):
        return [r for item in node for r in _regexes(item)]
    if isinstance(node, str) and len(node) > 2 and node.startswith("/") and node.endswith("/"):
        return [node[1:-1]]
    return []


def test_every_regex_is_one_re2_accepts() -> None:
    """Renovate compiles its regexes with RE2 (node-re2), which has no lookaround and no
    backreference: such a pattern is a config validation error and Renovate stops."""
    regexes = _regexes(CONFIG)
    assert regexes
    for regex in regexes:
        assert not re.search(r"\(\?<?[=!]|\\k<|\\[1-9]", regex), regex
        _js_regex(regex)  # and a valid pattern


def test_pip_compile_manager_covers_every_lock() -> None:
    patterns = _file_patterns(CONFIG["pip-compile"]["managerFilePatterns"])
    locks = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "requirements").glob("*.lock"))
    assert locks
    for lock in locks:
        # model.lock is locked --no-deps, which Renovate cannot re-run: updated by hand
        assert any(p.search(lock) for p in patterns) == (lock != "requirements/model.lock"), lock


def test_docker_regex_finds_every_digest_pin_of_the_stacks() -> None:
    manager = _custom("docker")
    files = _file_patterns(manager["managerFilePatterns"])
    (pattern,) = [_js_regex(s) for s in manager["matchStrings"]]
    for name in ("stacks/images.py", "Pulumi.yaml"):
        assert any(f.search(name) for f in files), name
        text = (ROOT / name).read_text()
        found = [m.group(0) for m in pattern.finditer(text)]
        assert found == DIGEST_REF.findall(text) and found, name
        for match in pattern.finditer(text):
            assert match["depName"] == "redis"
            assert match["currentDigest"].startswith("sha256:")


def _helm_pins_the_platform_program_installs(tmp_path: Path) -> set[tuple[str, str, str]]:
    """(chart, version, repository) of every Helm release the platform program renders, over
    every platform stack with every optional part on (log shipping), under Pulumi's mocks."""
    from platform_stack.preview import PROJECT_DIR, render

    pins = set()
    for stack_file in sorted(PROJECT_DIR.glob("Pulumi.*.yaml")):
        stack = stack_file.name.split(".")[1]
        project = tmp_path / stack
        project.mkdir()
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", project / "Pulumi.yaml")
        doc = yaml.safe_load(stack_file.read_text())
        # log shipping on (the Fluent Bit chart), with the identity that reads its key
        identity = (
            {"roleArn": "arn:aws:iam::210987654321:role/flowchat-logs"}
            if doc["config"]["flowchat-platform:cloud"] == "aws"
            else {
                "clientId": "6f1c2d1e-0000-4000-8000-000000000001",
                "tenantId": "6f1c2d1e-0000-4000-8000-000000000002",
            }
        )
        doc["config"]["flowchat-platform:logs"] = {
            "elasticsearchUrl": "https://logs.ciandt.com:9243",
            "credentialsSecret": "elasticsearch-api-key",
            **identity,
        }
        (project / stack_file.name).write_text(yaml.safe_dump(doc))
        for resource in render(stack, project_dir=project):
            if resource.type.startswith("kubernetes:helm.sh/"):
                inputs = resource.inputs
                pins.add((inputs["chart"], inputs["version"], inputs["repositoryOpts"]["repo"]))
    return pins


def test_helm_regexes_find_every_chart_the_platform_program_installs(tmp_path: Path) -> None:
    """Renovate's Helm patterns, run over the platform program's real files, find exactly the
    charts it renders: a chart pinned some other way (a new pin, a reworded line) fails here."""
    manager = _custom("helm")
    files = _file_patterns(manager["managerFilePatterns"])
    patterns = [_js_regex(s) for s in manager["matchStrings"]]
    found: list[tuple[str, str, str]] = []
    for path in sorted((ROOT / "platform_stack").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if not any(f.search(name) for f in files):
            continue
        text = path.read_text()
        for pattern in patterns:
            found += [
                (m["depName"], m["currentValue"], m["registryUrl"]) for m in pattern.finditer(text)
            ]
    expected = _helm_pins_the_platform_program_installs(tmp_path)
    assert {"ingress-nginx", "fluent-bit"} <= {chart for chart, _, _ in expected}  # EKS, logs on
    assert sorted(found) == sorted(expected)
