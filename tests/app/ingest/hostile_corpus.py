"""Hostile documents, generated on the spot (nothing hostile is committed).

Used by the sandbox tests, the live ingestion test and ``bench/ingest_during_chat.py``. Each
entry says what a finished ingestion must report: ``failed`` with a reason that contains the
given words (the limit that stopped it), or ``ingested`` for inputs whose only hostility was
to the old quadratic parsers (they now parse in linear time).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docx import Document
from fpdf import FPDF
from PIL import Image
from pypdf import PdfWriter

BOMB_MB = 256  # inflates to this; the default limit (INGEST_MAX_EXPANDED_MB) is 200
MANY_PAGES = 3000  # the default limit (INGEST_MAX_PAGES) is 1000
SPACES = 400_000  # the old regexes needed many minutes at this size


def zip_bomb_docx() -> bytes:
    """A valid .docx whose document.xml inflates to BOMB_MB (well over 500:1)."""
    base = io.BytesIO()
    document = Document()
    document.add_paragraph("A harmless looking paragraph.")
    document.save(base)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(base.getvalue())) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            if item.filename == "word/document.xml":
                continue
            target.writestr(item, source.read(item.filename))
        with target.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0"?><w:document xmlns:w="urn:x"><w:body><w:p><w:r>')
            block = b"<w:t>" + b"A" * (1024 * 1024 - 11) + b"</w:t>"
            for _ in range(BOMB_MB):
                member.write(block)
            member.write(b"</w:r></w:p></w:body></w:document>")
    return out.getvalue()


def quadratic_html() -> bytes:
    spaces = " " * SPACES
    return (
        f"<html><body><h1>Spaces</h1><p>before{spaces}after</p>"
        f"<div>{spaces}<p>{spaces}</p>{spaces}</div><p>Redis keeps the queue.</p></body></html>"
    ).encode()


def quadratic_markdown() -> bytes:
    spaces = " " * SPACES
    return f"# Heading{spaces}with spaces #\n\nBody text{spaces}of the section.\n".encode()


def giant_page_pdf() -> bytes:
    """One image-only page of 200 x 200 inches (the PDF maximum without UserUnit)."""
    out = io.BytesIO()
    Image.new("L", (50, 50), 255).save(out, "PDF", resolution=0.25)
    return out.getvalue()


def many_pages_pdf() -> bytes:
    writer = PdfWriter()
    for _ in range(MANY_PAGES):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for page in range(5):
        pdf.add_page()
        pdf.multi_cell(0, 8, f"Page {page}: the worker keeps a heartbeat in Redis. " * 20)
    data = bytes(pdf.output())
    return data[: len(data) // 2]


@dataclass(frozen=True)
class Hostile:
    filename: str
    make: Callable[[], bytes]
    status: str  # what ingestion must end with
    reason_words: tuple[str, ...] = ()  # words the failure reason must contain


CORPUS: tuple[Hostile, ...] = (
    Hostile("bomb.docx", zip_bomb_docx, "failed", ("expands beyond", "INGEST_MAX_EXPANDED_MB")),
    Hostile("giant-page.pdf", giant_page_pdf, "failed", ("200 x 200 inches", "megapixels")),
    Hostile(
        "many-pages.pdf", many_pages_pdf, "failed", (f"{MANY_PAGES} pages", "INGEST_MAX_PAGES")
    ),
    Hostile("truncated.pdf", truncated_pdf, "failed", ("truncated PDF",)),
    Hostile("spaces.html", quadratic_html, "ingested"),
    Hostile("spaces.md", quadratic_markdown, "ingested"),
)


def write(directory: Path, item: Hostile) -> Path:
    path = directory / item.filename
    path.write_bytes(item.make())
    return path
