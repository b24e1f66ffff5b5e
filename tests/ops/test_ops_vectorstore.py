"""ops.vectorstore rebuild against the real local service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import vectorstore


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        yaml.safe_dump([{"prompt": "How do I restart the worker?", "expect_source": "runbook.md"}])
    )
    return path


def test_rebuild_follows_progress_then_runs_the_regression_prompts(
    live_service: Any,
    prompts: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPS_TEST_ADMIN_TOKEN", live_service.admin_token)
    code = vectorstore.main(
        ["rebuild", "--base-url", live_service.base_url, "--admin-token-env",
         "OPS_TEST_ADMIN_TOKEN", "--prompts", str(prompts), "--interval", "0.2",
         "--budget", "60", "--allow-open"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Re-ingestion job" in out.out
    assert "PASS  prompt 1" in out.out
    assert live_service.admin_token not in out.out + out.err


def test_wrong_admin_token_is_refused_clearly(
    live_service: Any,
    prompts: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPS_TEST_ADMIN_TOKEN", "not-the-token")
    code = vectorstore.main(
        ["rebuild", "--base-url", live_service.base_url, "--admin-token-env",
         "OPS_TEST_ADMIN_TOKEN", "--prompts", str(prompts)]
    )  # fmt: skip
    assert code == 1
    assert "refused the admin token (HTTP 403)" in capsys.readouterr().err


def test_missing_token_variable(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("OPS_TEST_ADMIN_TOKEN", raising=False)
    code = vectorstore.main(
        ["rebuild", "--base-url", "http://127.0.0.1:1", "--admin-token-env", "OPS_TEST_ADMIN_TOKEN"]
    )
    assert code == 1
    assert "OPS_TEST_ADMIN_TOKEN (admin token) is not set" in capsys.readouterr().err
