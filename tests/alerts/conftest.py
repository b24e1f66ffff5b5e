"""Fixtures of tests/alerts: the rules file (from stacks.alerts, never by hand) and promtool."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from alerts_testlib import NAMESPACE, PROMTOOL

from stacks.alerts import CHROMA_PVC, Thresholds, prometheus_rules_file


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The staging rules file with runbook defaults, written by the module's CLI code path."""
    path = tmp_path / "rules.yaml"
    document = prometheus_rules_file(Thresholds(), namespace=NAMESPACE, chroma_pvc=CHROMA_PVC)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def promtool_test(rules_file: Path, tmp_path: Path) -> Callable[[list[dict[str, Any]]], None]:
    """Run `promtool test rules` on the given test cases; fail with promtool's output."""

    def run(tests: list[dict[str, Any]], evaluation_interval: str = "15s") -> None:
        assert PROMTOOL is not None
        test_file = tmp_path / "alerts_test.yaml"
        test_file.write_text(
            yaml.safe_dump(
                {
                    "rule_files": [rules_file.name],
                    "evaluation_interval": evaluation_interval,
                    "tests": tests,
                },
                sort_keys=False,
            )
        )
        result = subprocess.run(
            [PROMTOOL, "test", "rules", test_file.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    return run
