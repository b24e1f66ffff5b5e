"""renovate.json: valid against Renovate's schema (check-jsonschema's builtin vendor.renovate),
and its managers actually find every pin: the locks, the image digests, the Helm charts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
        assert found == DIGEST_REF.findall(text) and len(found) == 2, name
        for match in pattern.finditer(text):
            assert match["depName"] in ("redis", "chromadb/chroma")
            assert match["currentDigest"].startswith("sha256:")


def test_helm_regex_reads_a_chart_written_as_documented() -> None:
    manager = _custom("helm")
    files = _file_patterns(manager["managerFilePatterns"])
    assert any(f.search("infra_platform/keda.py") for f in files)
    assert any(f.search("platform_stack/addons.py") for f in files)
    (pattern,) = [_js_regex(s) for s in manager["matchStrings"]]
    source = """
        keda = k8s.helm.v3.Release(
            "keda",
            chart="keda", version="2.16.1",
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://kedacore.github.io/charts"),
        )
    """
    match = pattern.search(source)
    assert match is not None
    assert (match["depName"], match["currentValue"], match["registryUrl"]) == (
        "keda", "2.16.1", "https://kedacore.github.io/charts",
    )  # fmt: skip
