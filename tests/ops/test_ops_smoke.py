"""ops.smoke against the real local service (``live_service``), a dead URL and a stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.local.stack import free_port
from ops import smoke


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = smoke.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- without the service ------------------------------------------------------------------------


def test_dead_url_fails_with_connection_sentence(
    prompts_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    summary = tmp_path / "summary.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        code, out, err = run(["--base-url", url, "--prompts", str(prompts_file)], capsys)
    assert code == 1
    assert f"cannot connect to {url}" in err
    assert "FAIL  health ping" in out
    assert "SKIP  readiness" in out
    table = summary.read_text()
    assert "Smoke test FAILED" in table
    assert "| FAIL | health ping |" in table


def test_missing_prompts_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = run(["--base-url", "http://127.0.0.1:1", "--prompts", str(missing)], capsys)
    assert code == 1
    assert f"the regression prompts file {missing} does not exist" in err


def test_malformed_prompts_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- prompt: hi\n")
    with pytest.raises(smoke.OpsError, match=r"malformed at 0\.expect_source"):
        smoke.load_prompts(bad)


def test_stand_in_failing_chat_reports_the_job_error(fake_service: Any, prompts_file: Path) -> None:
    fake_service.healthy = lambda: False
    report = smoke.run_smoke(
        fake_service.url, prompts=smoke.load_prompts(prompts_file), progress=lambda _: None
    )
    assert not report.ok
    assert report.failure == (
        "chat round trip: the chat job failed: Flow refused the credentials (HTTP 401)"
    )
    # ping, readiness, keyless chat refused (the stand-in is closed), chat, one prompt
    assert [c.status for c in report.checks] == ["PASS", "PASS", "PASS", "FAIL", "SKIP"]


# --- against the real service -------------------------------------------------------------------


def test_healthy_service_passes(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["--base-url", live_service.base_url, "--prompts", str(prompts_file), "--budget", "60",
         "--allow-open"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "SKIP  keyless chat refused" in out  # `make run` is open on loopback
    assert "PASS  chat round trip" in out
    assert "PASS  prompt 1" in out


def test_flow_failing_every_time_fails_with_the_job_error(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_service.emulator.configure(error_rate=1.0)
    try:
        code, out, err = run(
            ["--base-url", live_service.base_url, "--prompts", str(prompts_file),
             "--budget", "60", "--allow-open"],
            capsys,
        )  # fmt: skip
    finally:
        live_service.emulator.reset()
    assert code == 1
    assert "FAIL  chat round trip" in out
    assert "the chat job failed:" in err


def test_an_open_service_fails_the_keyless_check(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --allow-open, a chat API that accepts a request without a key fails the smoke."""
    code, out, err = run(
        ["--base-url", live_service.base_url, "--prompts", str(prompts_file), "--budget", "60"],
        capsys,
    )
    assert code == 1
    assert "FAIL  keyless chat refused" in out
    assert "the chat API is open to anyone" in err


def test_stopped_workers_fail_readiness(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_service.stop_workers()
    try:
        code, out, err = run(
            ["--base-url", live_service.base_url, "--prompts", str(prompts_file)], capsys
        )
    finally:
        live_service.start_workers()
    assert code == 1
    assert "the service is not ready: workers" in err
    assert "SKIP  chat round trip" in out


def test_default_regression_prompts_pass_against_the_runbook(
    live_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke.DEFAULT_PROMPTS.is_file()
    code, out, err = run(
        ["--base-url", live_service.base_url, "--budget", "60", "--allow-open"], capsys
    )
    assert code == 0, err
    assert out.count("PASS  prompt") == len(smoke.load_prompts(smoke.DEFAULT_PROMPTS))
