"""bench/locustfile.py: locust, headless, for a few seconds against the test service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from app.core.settings import REPO_ROOT
from app.local.stack import free_port

LOCUSTFILE = REPO_ROOT / "bench" / "locustfile.py"


def _locust(host: str, summary: Path, seconds: int, users: int) -> subprocess.CompletedProcess:
    binary = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
    env = {
        **os.environ,
        "LOAD_USERS": str(users),
        "LOAD_DURATION_SECONDS": str(seconds),
        "LOAD_RAMP_SECONDS": "1",
        "LOAD_SUMMARY": str(summary),
        "FLOWCHAT_API_KEY": "",
    }
    return subprocess.run(
        [binary, "-f", str(LOCUSTFILE), "--headless", "--host", host, "--only-summary"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_a_short_run_against_the_service_reports_every_route(live_service, tmp_path) -> None:
    summary = tmp_path / "summary.md"
    done = _locust(live_service.base_url, summary, seconds=6, users=3)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = summary.read_text()
    for route in ("POST /api/chat", "GET /api/chat/{id}?wait", "chat: submit -> answer"):
        assert f"| {route} |" in text, text
    assert "PASS" in text
    answers = next(line for line in text.splitlines() if line.startswith("| chat: submit"))
    assert int(answers.split("|")[2]) > 0  # at least one chat was answered end to end


def test_a_run_with_errors_fails_and_says_why(tmp_path) -> None:
    summary = tmp_path / "summary.md"
    done = _locust(f"http://127.0.0.1:{free_port()}", summary, seconds=2, users=1)
    assert done.returncode == 1
    text = summary.read_text()
    assert "FAIL" in text and "100.00%" in text
