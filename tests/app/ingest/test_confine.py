"""The parsing child holds nothing (``app.ingest.confine``, item 5 of issue 18): no secret in its
environment, the ``nobody`` user when started by root, no socket, and every program it starts
dies with it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.core.settings import REPO_ROOT
from app.ingest import confine
from app.ingest.sandbox import load_in_sandbox, start_child

SECRETS = {
    "FLOW_AGENT_SECRET": "flow-s3cret-value",
    "ADMIN_TOKEN": "admin-s3cret-value",
    "REDIS_PASSWORD": "redis-s3cret-value",
    "CHROMA_TOKEN": "chroma-s3cret-value",
    "API_KEYS": "key-s3cret-value",
}
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
NOBODY = pwd.getpwnam(confine.SANDBOX_USER).pw_uid

# runs in the child exactly where the parser would: after enter_sandbox, as the sandbox sets it up
PROBE = """
import json, os, socket, sys
from app.ingest.sandbox import enter_sandbox
request = json.loads(sys.argv[1])
ids = tuple(request["ids"]) if request["ids"] else None
report = {"filtered": enter_sandbox(request["parent"], ids)}
report.update(environ=dict(os.environ), uid=os.getuid(), gid=os.getgid(), groups=os.getgroups())
report["upload"] = open(request["upload"]).read()
try:
    open(request["root_only"]).read()
    report["root_only"] = "read"
except OSError as exc:
    report["root_only"] = exc.errno
try:
    socket.create_connection(("127.0.0.1", request["port"]), timeout=5).close()
    report["connect"] = "connected"
except OSError as exc:
    report["connect"] = exc.errno
with open(request["out"], "w") as out:
    json.dump(report, out)
"""


@pytest.fixture
def secrets_in_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _assert_no_secret(environ: dict[str, str]) -> None:
    assert not set(SECRETS) & set(environ), sorted(environ)
    for value in SECRETS.values():
        assert all(value not in v for v in environ.values())
    assert set(environ) <= {*confine.ENV_ALLOWLIST, *confine.CHILD_ENV, "HOME", "TMPDIR"} | {
        "PYTHONPATH"
    }


@as_root
def test_the_child_has_no_secret_no_other_user_and_no_socket(
    tmp_path: Path, secrets_in_parent: None, request: pytest.FixtureRequest
) -> None:
    request_cleanup = request.addfinalizer
    # like load_in_sandbox: a directory of the system's temporary area (pytest's is root-only)
    home = Path(tempfile.mkdtemp(prefix="flowchat-probe-"))
    request_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    (home / "probe.py").write_text(PROBE)  # the child's directory is first on its path
    (home / "upload.txt").write_text("the uploaded text")
    root_only = tmp_path / "root-only.txt"  # what the worker's user can read, nobody cannot
    root_only.write_text("service data")
    root_only.chmod(0o600)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        probe = {
            "parent": os.getpid(),
            "ids": confine.sandbox_ids(),
            "upload": str(home / "upload.txt"),
            "root_only": str(root_only),
            "port": listener.getsockname()[1],
            "out": str(home / "report.json"),
        }
        child = start_child(["probe", json.dumps(probe)], home)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr.decode()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    report = json.loads((home / "report.json").read_text())
    _assert_no_secret(report["environ"])
    assert (report["uid"], report["gid"], report["groups"]) == (NOBODY, NOBODY, [])
    assert report["upload"] == "the uploaded text"  # what it must read, it can
    assert report["root_only"] == errno.EACCES
    assert report["filtered"] is True
    assert report["connect"] == errno.EACCES  # socket() itself is refused


def _children_of(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and fields.get("State", "")[:1] != "Z":
            found[int(entry.name)] = fields["Name"].strip()
    return found


def _sandbox_child(marker: str) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"\x00app.ingest.sandbox\x00" in cmdline and marker.encode() in cmdline:
            return int(entry.name)
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout  # a polling limit, not a timing assertion
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


@as_root
def test_the_real_parsing_child_runs_as_nobody_without_secrets_under_the_filter(
    tmp_path: Path, secrets_in_parent: None
) -> None:
    slow = tmp_path / "confined-slow.html"
    slow.write_text("<html><body>" + "<p>relay voltage log</p>\n" * 400_000 + "</body></html>")
    result: dict = {}
    parse = threading.Thread(
        target=lambda: result.update(doc=load_in_sandbox(slow, slow.name)), daemon=True
    )
    parse.start()
    child = _wait_for(lambda: _sandbox_child(slow.name), "the sandbox start")
    # seen from outside while it parses: its user, its filter, its environment
    status = _wait_for(
        lambda: (s := Path(f"/proc/{child}/status").read_text()) and "Seccomp:\t2" in s and s,
        "the seccomp filter",
    )
    assert f"Uid:\t{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}" in status
    assert "NoNewPrivs:\t1" in status
    environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\x00")
    _assert_no_secret(dict(e.decode().split("=", 1) for e in environ if e))
    parse.join(300)
    assert result["doc"].text_length > 0  # the copy of the upload was readable


def _scanned_pdf(path: Path, pages: int) -> Path:
    images = []
    for page in range(pages):
        image = Image.new("L", (1654, 2339), 255)
        draw = ImageDraw.Draw(image)
        for row in range(40):
            draw.text((150, 100 + row * 50), f"page {page} line {row} relay log", fill=0)
        images.append(image)
    images[0].save(path, "PDF", resolution=200, save_all=True, append_images=images[1:])
    return path


def test_a_child_killed_mid_ocr_leaves_no_ocr_program_behind(tmp_path: Path) -> None:
    """The worker is stopped (SIGSTOP: it cannot clean up), the child is SIGKILLed while
    pdftoppm or tesseract runs: the OCR program dies with it (PR_SET_PDEATHSIG)."""
    pdf = _scanned_pdf(tmp_path / "scanned-ocr-kill.pdf", pages=8)
    code = (
        "from pathlib import Path; from app.ingest.sandbox import load_in_sandbox; "
        f"load_in_sandbox(Path({str(pdf)!r}), {pdf.name!r})"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        child = _wait_for(lambda: _sandbox_child(pdf.name), "the sandbox start")
        ocr = _wait_for(lambda: _stopped_ocr_program(child), "an OCR program", timeout=120)
        os.kill(worker.pid, signal.SIGSTOP)
        os.kill(child, signal.SIGKILL)
        # stopped, the OCR program cannot end on its own: only its parent-death signal kills it
        _wait_for(lambda: not _alive(ocr), f"the end of OCR program {ocr}")
    finally:
        worker.kill()
        worker.wait()
        with contextlib.suppress(UnboundLocalError, ProcessLookupError):
            os.kill(ocr, signal.SIGKILL)


def _stopped_ocr_program(child: int) -> int | None:
    """Stop (SIGSTOP) an OCR program the child runs; its pid once it is stopped and alive."""
    for pid, name in _children_of(child).items():
        if name in ("pdftoppm", "tesseract"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                if _alive(pid):
                    return pid
    return None


def test_the_worker_that_parses_keeps_its_environment_private(tmp_path: Path) -> None:
    """After a parse the worker is non-dumpable: a child of the same user (pods, `make run` as
    a normal user) cannot read its secrets from /proc/<worker>/environ."""
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nplain text\n")
    code = (
        "import ctypes; from pathlib import Path; from app.ingest.sandbox import load_in_sandbox; "
        "libc = ctypes.CDLL(None); before = libc.prctl(3); "
        f"load_in_sandbox(Path({str(doc)!r}), 'note.md'); print(before, libc.prctl(3))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "0"]  # PR_GET_DUMPABLE: dumpable before, not after
