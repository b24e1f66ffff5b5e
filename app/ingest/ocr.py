"""OCR of image-only PDF pages: render the page with ``pdftoppm``, read it with ``tesseract``.

Measured on a 2-core machine (one A4 page of text, 300 dpi): ``pdftoppm`` + ``tesseract`` takes
~1.1 s per page and touches only the pages that need it; ``ocrmypdf --skip-text`` on the whole
file then pypdf again takes ~1.1-1.4 s per page, rewrites the whole PDF and refuses some files
(signed or encrypted PDFs). Rendering the pages we need is simpler and more robust.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from app.ingest.confine import die_with_parent
from app.ingest.models import DocumentLoadError, NeedsOCR

OCR_TOOLS = ("pdftoppm", "tesseract")
RENDER_DPI = 300
PAGE_TIMEOUT_SECONDS = 120
LANGUAGE = "eng"


# Where the parsing child finds each program: looked up by the worker (see find_programs), not
# on the child's PATH, which it may not be allowed to search. None: this process looks itself.
_programs: dict[str, str | None] | None = None


def find_programs() -> dict[str, str | None]:
    """Each OCR program as found on this process's PATH, symlinks resolved (None: not found).

    The worker looks them up and hands them to the parsing child (:mod:`app.ingest.sandbox`),
    which may run as ``nobody`` and cannot search every directory of the worker's PATH (a
    root-only ``bin/`` of symlinks): on its own PATH it would call an installed program missing
    and send the operator to install the wrong package."""
    found = {tool: shutil.which(tool) for tool in OCR_TOOLS}
    return {tool: os.path.realpath(path) if path else None for tool, path in found.items()}


def use_programs(programs: Mapping[str, str | None]) -> None:
    """Use these OCR programs (the parent's :func:`find_programs`) instead of looking on PATH."""
    global _programs
    _programs = {tool: programs.get(tool) for tool in OCR_TOOLS}


def _program(tool: str) -> str | None:
    return shutil.which(tool) if _programs is None else _programs[tool]


def missing_tools() -> list[str]:
    """Names of the OCR programs not found on PATH (empty when OCR is available)."""
    return [tool for tool in OCR_TOOLS if _program(tool) is None]


def ocr_available() -> bool:
    return not missing_tools()


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    program = _program(args[0])
    if program is None:  # gone between missing_tools() and now
        raise DocumentLoadError(f"OCR could not run {args[0]} while {what}: it is not installed")
    try:
        result = subprocess.run(
            args,  # argv[0] stays the program's name, whatever the file it resolves to
            executable=program,
            capture_output=True,
            timeout=PAGE_TIMEOUT_SECONDS,
            check=False,
            preexec_fn=die_with_parent,  # dies with the parsing child, whatever kills it
        )
    except subprocess.TimeoutExpired as exc:
        raise DocumentLoadError(f"OCR timed out while {what}") from exc
    except OSError as exc:  # e.g. a program the sandbox user may not execute
        raise DocumentLoadError(
            f"OCR could not run {args[0]} ({program}) while {what}: {exc.strerror}"
        ) from exc
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit code {result.returncode}"
        raise DocumentLoadError(f"OCR failed while {what}: {detail}")
    return result


def ocr_page(pdf: Path, page: int, workdir: Path) -> str:
    """Text of one page (1-based) of ``pdf``, read by tesseract from a grey 300 dpi rendering."""
    prefix = workdir / f"page-{page}"
    _run(
        [
            "pdftoppm", "-r", str(RENDER_DPI), "-gray", "-png", "-singlefile",
            "-f", str(page), "-l", str(page), str(pdf), str(prefix),
        ],
        f"rendering page {page}",
    )  # fmt: skip
    image = prefix.with_suffix(".png")
    result = _run(["tesseract", str(image), "stdout", "-l", LANGUAGE], f"reading page {page}")
    image.unlink(missing_ok=True)
    return result.stdout.decode("utf-8", "replace")


def ocr_pages(pdf: Path, pages: Iterable[int]) -> dict[int, str]:
    """OCR the given 1-based pages of ``pdf``; raises NeedsOCR when the tools are missing."""
    missing = missing_tools()
    if missing:
        raise NeedsOCR(
            "the PDF has image-only pages and OCR is not available "
            f"(missing: {', '.join(missing)}); install poppler-utils and tesseract-ocr"
        )
    with tempfile.TemporaryDirectory(prefix="flowchat-ocr-") as tmp:
        return {page: ocr_page(pdf, page, Path(tmp)) for page in pages}
