"""`make run` (python -m app.local): starts everything, answers, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from app.local.stack import free_port


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def _start_make_run(
    port: int, data: Path, docs: Path, timeout: float = 180
) -> tuple[subprocess.Popen, str]:
    """`make run` on ``port``: the process, and its output up to "Press Ctrl-C to stop"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "app.local"),
            *("--port", str(port), "--data-dir", str(data), "--docs", str(docs)),
            *("--workers", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Press Ctrl-C to stop." in line:
            break
    return proc, "".join(output)


def _ask(base: str) -> dict:
    job = httpx.post(f"{base}/api/chat", json={"message": "How do I restart the worker?"}).json()
    return httpx.get(f"{base}/api/chat/{job['id']}", params={"wait": 20}, timeout=30).json()


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    return proc.stdout.read()


def _server_closes_a_connection(port: int) -> None:
    """A request with `Connection: close`, read to the end: the server closes first, so the
    connection lingers in TIME_WAIT on the API's port, as a browser's connections do."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass


def test_make_run_serves_a_cited_answer_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text(
        "# Runbook\n\n## Restart Worker\n\nRun `docker compose restart worker` locally, or "
        "`python -m ops.worker restart` in Kubernetes, then watch the queue drain.\n\n"
        "## Rotate Flow Credentials\n\nRun the rotate-flow-credentials workflow.\n"
    )
    data = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, text = _start_make_run(port, data, docs)
    try:
        assert "flowchat is running on http://127.0.0.1:" in text, text
        assert "1 document(s) ready" in text
        # issue 21 item 2: where Redis (port, password) is, written down and printed
        stack_file = data / "local-stack.json"
        assert f"(ops commands: --stack local): {stack_file}" in text
        assert stack_file.stat().st_mode & 0o777 == 0o600
        details = json.loads(stack_file.read_text())
        assert details["api_url"] == base
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", details["redis_url"])
        password = Path(details["redis_password_file"]).read_text().strip()
        assert password and password not in text
        assert redis.Redis.from_url(details["redis_url"], password=password).ping()
        assert _processes_mentioning(str(data)), "redis/chroma should be running under the data dir"
        answer = _ask(base)
        assert answer["status"] == "finished", answer
        assert answer["sources"][0]["document"] == "runbook.md"
        assert answer["sources"][0]["heading"].endswith("Restart Worker")
        _server_closes_a_connection(port)
    finally:
        stopped = _stop(proc)
    assert "stopped" in stopped
    assert not (data / "local-stack.json").exists()  # `--stack local` now says it is not running
    assert _processes_mentioning(str(data)) == []
    with socket.socket() as sock:  # nothing listens any more: a bind as uvicorn's succeeds
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    # but the old port check (a bind without SO_REUSEADDR) would refuse to start again now
    with socket.socket() as sock, pytest.raises(OSError):
        sock.bind(("127.0.0.1", port))

    # started again at once, on the same port and data: it comes up and answers
    proc, text = _start_make_run(port, data, docs)
    try:
        assert "flowchat is running on" in text, text
        assert _ask(base)["status"] == "finished"
    finally:
        _stop(proc)
    assert _processes_mentioning(str(data)) == []


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.local.run",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr


def test_missing_ocr_tools_are_installed_as_root(monkeypatch, capsys) -> None:
    from app.local import run as run_local

    installed: set[str] = set()
    monkeypatch.setattr(run_local.shutil, "which", lambda tool: tool if tool in installed else None)
    monkeypatch.setattr(run_local, "can_apt_install", lambda: True)
    calls: list[list[str]] = []

    def apt_install(packages: list[str]) -> bool:
        calls.append(packages)
        installed.update({"tesseract", "pdftoppm"})
        return True

    monkeypatch.setattr(run_local, "apt_install", apt_install)
    assert run_local.ensure_ocr_tools() == []
    assert calls == [["tesseract-ocr", "poppler-utils", "tesseract-ocr-eng"]]


def test_missing_ocr_tools_without_root_say_exactly_what_to_install(monkeypatch, capsys) -> None:
    from app.local import run as run_local

    monkeypatch.setattr(
        run_local.shutil, "which", lambda tool: None if tool == "pdftoppm" else tool
    )
    monkeypatch.setattr(run_local, "can_apt_install", lambda: False)
    assert run_local.ensure_ocr_tools() == ["pdftoppm"]
    out = capsys.readouterr().out
    assert "scanned PDFs will fail" in out
    assert "sudo apt-get install poppler-utils" in out


def test_the_documented_smoke_test_passes_against_make_run(tmp_path: Path) -> None:
    """Issue 21 items 6 and 7: `make run` deploys docs/ (so the smoke prompts find their
    documents) and `python -m ops.smoke --stack local --allow-open`, as docs/runbook.md gives
    it, passes against it."""
    from app.core.settings import REPO_ROOT

    data = tmp_path / "var"
    port = free_port()
    # docs/ is deployed before make run says it runs: ingestion of every document, on a busy
    # machine with retries after Chroma timeouts, takes minutes
    proc, text = _start_make_run(port, data, REPO_ROOT / "docs", timeout=900)
    try:
        assert "flowchat is running on" in text, text
        env = {k: v for k, v in os.environ.items() if k not in ("FLOWCHAT_API_KEY", "REDIS_URL")}
        env["FLOWCHAT_LOCAL_STACK"] = str(data / "local-stack.json")
        smoke = subprocess.run(
            [sys.executable, "-m", "ops.smoke", "--stack", "local", "--allow-open"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "SKIP  keyless chat refused" in smoke.stdout  # open: only with --allow-open
        closed = subprocess.run(
            [sys.executable, "-m", "ops.smoke", "--stack", "local"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert closed.returncode == 1 and "the chat API is open to anyone" in closed.stderr
    finally:
        _stop(proc)
