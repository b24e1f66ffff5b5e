"""The pack's shape: publishable as a directory (no import of `app`, no sys.path tricks), a
dependency-free thresholds module, and `app.contracts` re-exporting the same objects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from app import contracts
from policies.runbook import rules, thresholds

PACK = Path(__file__).resolve().parents[2] / "policies"
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a module (relative imports excluded)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_thresholds_module_needs_only_the_standard_library() -> None:
    assert imports(PACK / "runbook" / "thresholds.py") - {"__future__"} <= STDLIB


def test_the_pack_imports_nothing_outside_its_directory() -> None:
    local = {p.stem for p in PACK.glob("*.py")} | {"runbook", "policies"}
    for path in PACK.rglob("*.py"):
        outside = imports(path) - STDLIB - {"__future__", "pulumi_policy"} - local
        assert outside == set(), f"{path.relative_to(PACK)} imports {outside}"
        assert "sys.path.insert" not in path.read_text(), path
        assert "sys.path.append" not in path.read_text(), path


def test_the_pack_loads_from_a_copy_of_its_directory_alone(tmp_path: Path) -> None:
    """What `pulumi policy publish` packs is all the pack needs: import it from a copy."""
    copy = tmp_path / "pack"
    subprocess.run(["cp", "-r", str(PACK), str(copy)], check=True)
    code = "from runbook.rules import PACK_NAME, policies; print(PACK_NAME, len(policies()))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); {code}"],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [rules.PACK_NAME, str(len(rules.RULES))]


def test_app_contracts_re_exports_the_shared_names_unchanged() -> None:
    shared = {n for n in dir(thresholds) if n.isupper()}
    exported = shared & set(vars(contracts))
    assert {"QUEUE_NAME", "METRIC_RQ_JOBS", "QUEUE_DEPTH_THRESHOLD", "SECRET_KEYS"} <= exported
    for name in exported:
        assert getattr(contracts, name) is getattr(thresholds, name), name


def test_rule_text_is_derived_from_the_thresholds() -> None:
    described = {rule.name: rule.description for rule in rules.RULES}
    assert f"<= {thresholds.QUEUE_DEPTH_THRESHOLD} queued" in described["queue-depth-alert"]
    assert f"<= {thresholds.QUEUE_DEPTH_FOR}" in described["queue-depth-alert"]
    for rule, props in rules.CONFIG.items():
        for key, prop in props.items():
            bound = prop.get("maximum", prop.get("minimum"))
            if bound is not None:
                assert bound == prop["default"], (rule, key)
