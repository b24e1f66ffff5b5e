"""Parsing in a limited child process (``app.ingest.sandbox``): every limit ends the child, not
the caller, with a reason naming the limit; the hostile corpus ends as it must."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from hostile_corpus import CORPUS, Hostile, write

from app.core.settings import REPO_ROOT, load_settings
from app.ingest.limits import IngestLimits, LimitExceeded, check_archive
from app.ingest.models import DocumentLoadError, IngestError
from app.ingest.sandbox import load_in_sandbox

DEFAULTS = IngestLimits.from_settings(load_settings())


@pytest.fixture(scope="module")
def big_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sandbox") / "big.txt"
    path.write_text(("the worker keeps a heartbeat in redis " * 4 + "\n") * 200_000)  # ~30 MB
    return path


def test_an_honest_document_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "runbook.md"
    path.write_text("# Runbook\n\n## Restart\nRun the restart command.\n")
    loaded = load_in_sandbox(path, "runbook.md", DEFAULTS)
    assert loaded.title == "Runbook"
    assert [(s.heading, s.text) for s in loaded.sections] == [
        ("Restart", "Run the restart command.")
    ]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"memory_mb": 256}, ("memory limit of 256 MB", "INGEST_MAX_MEMORY_MB")),
        ({"output_mb": 4}, ("larger than 4 MB", "INGEST_MAX_OUTPUT_MB")),
        ({"cpu_seconds": 1}, ("more than 1 s of CPU time", "INGEST_MAX_CPU_SECONDS")),
        ({"wall_seconds": 1, "cpu_seconds": 60}, ("longer than 1 s", "INGEST_MAX_WALL_SECONDS")),
    ],
)
def test_each_process_limit_stops_the_child_and_is_named(
    big_text: Path, changes: dict, words: tuple[str, ...]
) -> None:
    limits = replace(DEFAULTS, **changes)
    with pytest.raises(LimitExceeded) as caught:
        load_in_sandbox(big_text, "big.txt", limits)
    for word in words:
        assert word in caught.value.reason


def test_the_same_file_passes_with_the_default_limits(big_text: Path) -> None:
    assert load_in_sandbox(big_text, "big.txt", DEFAULTS).text_length > 20_000_000


def test_a_compression_ratio_over_the_limit_is_refused_from_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = next(item for item in CORPUS if item.filename.endswith(".docx"))
    path = write(tmp_path, bomb)
    opened: list[object] = []  # members opened for reading: none may be, nothing is inflated
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k)
    )
    with pytest.raises(LimitExceeded, match="INGEST_MAX_COMPRESSION_RATIO"):
        check_archive(path, replace(DEFAULTS, expanded_mb=10_000))
    with pytest.raises(LimitExceeded, match="expands beyond 200 MB"):
        check_archive(path, DEFAULTS)
    assert opened == []  # refused from the central directory alone


@pytest.mark.parametrize("item", CORPUS, ids=lambda item: item.filename)
def test_the_hostile_corpus_ends_as_it_must(tmp_path: Path, item: Hostile) -> None:
    path = write(tmp_path, item)
    if item.status == "ingested":
        assert load_in_sandbox(path, item.filename, DEFAULTS).text_length > 0
        return
    with pytest.raises(IngestError) as caught:
        load_in_sandbox(path, item.filename, DEFAULTS)
    assert isinstance(caught.value, LimitExceeded | DocumentLoadError)
    for word in item.reason_words:
        assert word in caught.value.reason, caught.value.reason


def _sandboxes_reading(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        # the child reads a copy of the upload; its request names the upload's file name
        if b"\x00app.ingest.sandbox\x00" in cmdline and f'"{path.name}"'.encode() in cmdline:
            found.append(int(proc.name))
    return found


def _limited(pid: int) -> bool:
    """True once the sandbox child has applied its address-space limit (it asks for its death
    signal just before)."""
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return False
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    return line.split()[3] != "unlimited"


def test_a_killed_worker_takes_its_parse_with_it(tmp_path: Path) -> None:
    slow = tmp_path / "slow.html"
    slow.write_text("<html><body>" + "<p>relay voltage log</p>\n" * 400_000 + "</body></html>")
    code = (
        "from pathlib import Path; from app.ingest.sandbox import load_in_sandbox; "
        f"load_in_sandbox(Path({str(slow)!r}), 'slow.html')"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 120  # a polling limit: a busy machine starts it later
        while time.monotonic() < deadline:
            children = _sandboxes_reading(slow)
            if children and all(_limited(pid) for pid in children):
                break
            time.sleep(0.05)
        assert children, "the sandbox never started"
        # past its set-up (death signal, then limits) and frozen, the child cannot end by
        # finishing its parse, only by a signal: its parent's death, however slow the machine
        for pid in children:
            os.kill(pid, signal.SIGSTOP)
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 60  # a polling limit, not a timing
    while _sandboxes_reading(slow) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _sandboxes_reading(slow)
    for pid in left:  # do not leave a stopped process behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
