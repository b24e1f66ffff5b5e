"""Where the parsing child finds the OCR programs: the worker looks them up on its PATH and
hands them over, since the child (``nobody`` under a root worker) may not search that PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.ingest import ocr
from app.ingest.models import DocumentLoadError, NeedsOCR


@pytest.fixture(autouse=True)
def _own_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "_programs", None)  # what use_programs sets is undone after each test


def test_the_worker_finds_the_programs_through_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm is not None, "poppler-utils is a test dependency"
    tools = tmp_path / "bin"  # under pytest's 0700 directory: out of nobody's reach
    tools.mkdir()
    (tools / "pdftoppm").symlink_to(pdftoppm)
    monkeypatch.setenv("PATH", str(tools))
    assert ocr.find_programs() == {"pdftoppm": os.path.realpath(pdftoppm), "tesseract": None}


def test_the_child_names_only_what_the_worker_did_not_find(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ocr.use_programs({"pdftoppm": shutil.which("pdftoppm"), "tesseract": None})
    monkeypatch.setenv("PATH", "")  # the child's own PATH no longer matters
    assert ocr.missing_tools() == ["tesseract"]
    with pytest.raises(NeedsOCR, match=r"missing: tesseract\)"):
        ocr.ocr_pages(Path("unused.pdf"), [1])


def test_a_program_that_cannot_run_is_one_sentence(tmp_path: Path) -> None:
    not_executable = tmp_path / "pdftoppm"
    not_executable.write_text("#!/bin/sh\n")
    ocr.use_programs({"pdftoppm": str(not_executable), "tesseract": shutil.which("tesseract")})
    with pytest.raises(DocumentLoadError, match=r"could not run pdftoppm .* while rendering"):
        ocr.ocr_page(tmp_path / "scan.pdf", 1, tmp_path)
