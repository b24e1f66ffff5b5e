"""`python -m app.selfcheck` as the image and `make test` run it: a subprocess of this venv.

It passes here (the tests' Debian packages and the embedding model are installed), and it fails,
one sentence per failure, when tesseract is missing from PATH or the root is writable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import selfcheck

ROOT = Path(__file__).resolve().parents[2]


def _selfcheck(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "app.selfcheck", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def test_selfcheck_passes_in_the_venv() -> None:
    done = _selfcheck()
    assert done.returncode == 0, done.stderr
    assert "self-check passed" in done.stdout


def test_selfcheck_fails_without_tesseract(tmp_path: Path) -> None:
    """PATH holds the venv and pdftoppm but no tesseract: the OCR check and the scanned-PDF
    loader fail, each in one sentence naming tesseract; the other checks still pass."""
    tools = tmp_path / "bin"
    tools.mkdir()
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm is not None, "poppler-utils is a test dependency (scripts/system-packages.txt)"
    (tools / "pdftoppm").symlink_to(pdftoppm)
    done = _selfcheck(path=f"{Path(sys.executable).parent}{os.pathsep}{tools}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert (
        lines[0]
        == "OCR programs: tesseract is not on PATH, so reading a rendered page is impossible"
    )
    assert lines[1].startswith("loaders: loaders failed on generated samples: scanned .pdf (")
    assert "missing: tesseract" in lines[1]
    assert len(lines) == 2  # imports and the embedding model still pass


# A private mount namespace whose root is read-only, with a tmpfs on /tmp: what the deploy
# workflow's `docker run --read-only --tmpfs /tmp ...` gives the image. The remount happens in
# the new namespace only (`unshare -m`: bash runs only if the namespace was created).
READ_ONLY_ROOT = """
set -e
mount -o remount,bind,ro /
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /tmp/documents /tmp/chroma
exec "$@"
"""


def _read_only_root_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", READ_ONLY_ROOT, "_", "true"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not _read_only_root_available(), reason="cannot create a mount namespace here (needs root)"
)


def _in_read_only_root(*argv: str, documents: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "DOCUMENTS_PATH": documents,
           "VECTOR_STORE_PATH": "/tmp/chroma"}  # fmt: skip
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", READ_ONLY_ROOT, "_",
         sys.executable, *argv],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@needs_namespaces
def test_selfcheck_passes_on_a_read_only_root() -> None:
    """Every check (model, OCR, loaders in their sandbox) runs writing only to the temp dir."""
    done = _in_read_only_root("-m", "app.selfcheck", "--read-only-root", documents="/tmp/documents")
    assert done.returncode == 0, done.stderr
    assert "self-check passed" in done.stdout


@needs_namespaces
def test_read_only_root_check_fails_when_the_documents_volume_is_not_writable() -> None:
    probe = "from app.selfcheck import run_one; run_one('read-only root')"
    done = _in_read_only_root("-c", probe, documents=str(ROOT / "var" / "documents"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "read-only root: places the service writes to are not writable: "
        f"['{ROOT / 'var' / 'documents'}']"
    )


@pytest.mark.skipif(
    os.statvfs("/").f_flag & os.ST_RDONLY, reason="the root filesystem is read-only here"
)
def test_read_only_root_check_fails_on_a_writable_root() -> None:
    with pytest.raises(selfcheck.CheckFailed, match="root filesystem is writable"):
        selfcheck.check_read_only_root(Path("/"))


def test_generated_pdfs_load_as_text_and_as_image_only(tmp_path: Path) -> None:
    """The samples are what they claim: pypdf reads the text PDF, and finds no text in the image
    PDF built from its rendering (so its loader must OCR it)."""
    from pypdf import PdfReader

    text = tmp_path / "t.pdf"
    text.write_bytes(selfcheck.text_pdf())
    assert selfcheck.PHRASE in PdfReader(text).pages[0].extract_text()
    width, height, gray = selfcheck.read_pgm(selfcheck.render_page(text, tmp_path))
    scanned = tmp_path / "s.pdf"
    scanned.write_bytes(selfcheck.image_pdf(width, height, gray))
    assert PdfReader(scanned).pages[0].extract_text().strip() == ""
