"""PDF: one section per page (1-based page numbers), text by pypdf; pages without extractable
text but with images go through OCR (``app.ingest.ocr``)."""

from __future__ import annotations

import logging
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from app.ingest import ocr
from app.ingest.limits import check_ocr_page, check_page_count
from app.ingest.loaders.text import clean_text, require_text
from app.ingest.models import DocumentLoadError, LoadedDocument
from app.rag.chunking import Section

log = logging.getLogger(__name__)

HEADER = b"%PDF-"
EOF_MARKER = b"%%EOF"
TAIL_BYTES = 2048  # real PDFs end with %%EOF, sometimes followed by a little padding


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def check_envelope(path: Path) -> None:
    """Refuse files that are not PDFs or were cut short (no end-of-file marker)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(1024)
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read()
    if HEADER not in head:
        raise DocumentLoadError("not a PDF file (no %PDF header)")
    if EOF_MARKER not in tail:
        raise DocumentLoadError("truncated PDF (no end-of-file marker); upload the file again")


def _open(path: Path) -> PdfReader:
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentLoadError("encrypted PDF; upload a copy without a password")
        _ = len(reader.pages)
    except DocumentLoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentLoadError(f"corrupt PDF: {_first_line(exc)}") from exc
    return reader


def _metadata_title(reader: PdfReader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError, TypeError):
        return ""
    return " ".join(str(title).split()) if title else ""


def _has_images(reader: PdfReader, index: int) -> bool:
    try:
        return len(reader.pages[index].images) > 0
    except Exception:  # an unreadable image still means "try OCR"
        return True


def _page_size(reader: PdfReader, index: int) -> tuple[float, float]:
    """Width and height in points (1/72 inch) as rendered: crop box times the page's
    UserUnit (PDF 1.6 lets a page scale its unit, up to 75,000 x 75,000 inches)."""
    page = reader.pages[index]
    try:
        unit = float(page.get("/UserUnit", 1) or 1)
        box = page.cropbox
        return abs(float(box.width)) * unit, abs(float(box.height)) * unit
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise DocumentLoadError(f"corrupt PDF: page {index + 1} has no size: {exc}") from exc


def load_pdf(path: Path, fallback_title: str, *, force_ocr: bool = False) -> LoadedDocument:
    """One section per page; image-only pages are OCRed. ``force_ocr`` OCRs every page with an
    image, replacing its text layer (a scan whose embedded text is garbage)."""
    check_envelope(path)
    reader = _open(path)
    check_page_count(len(reader.pages))
    texts: dict[int, str] = {}
    for index, page in enumerate(reader.pages):
        try:
            texts[index + 1] = clean_text(page.extract_text() or "")
        except (PyPdfError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise DocumentLoadError(f"corrupt PDF: page {index + 1}: {_first_line(exc)}") from exc
    image_only = [
        n for n, text in texts.items() if (force_ocr or not text) and _has_images(reader, n - 1)
    ]
    if image_only:
        for number in image_only:  # the bitmap pdftoppm would render, before it does
            width, height = _page_size(reader, number - 1)
            check_ocr_page(number, width, height, ocr.RENDER_DPI)
        log.info("OCR of %d image-only page(s) of %s", len(image_only), path.name)
        for number, text in ocr.ocr_pages(path, image_only).items():
            texts[number] = clean_text(text)
    sections = [Section(text=text, page=number) for number, text in sorted(texts.items())]
    sections = require_text(sections, "PDF (it may be damaged, or its pages are blank)")
    return LoadedDocument(title=_metadata_title(reader) or fallback_title, sections=sections)
