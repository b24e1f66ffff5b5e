from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfWriter

from app.ingest.loaders.pdf import load_pdf
from app.ingest.models import DocumentLoadError, NeedsOCR

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
needs_ocr_tools = pytest.mark.skipif(
    not (shutil.which("tesseract") and shutil.which("pdftoppm")), reason="OCR tools missing"
)


def text_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def scanned_pdf(path: Path, lines: list[str]) -> Path:
    """A PDF whose only page is a picture of text (what a scanner produces)."""
    image = Image.new("L", (1654, 2339), 255)  # A4 at 200 dpi
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 44) if FONT.exists() else ImageFont.load_default(44)
    for row, line in enumerate(lines):
        draw.text((150, 200 + row * 80), line, fill=0, font=font)
    image.save(path, "PDF", resolution=200)
    return path


def test_one_section_per_page_with_metadata_title(tmp_path: Path) -> None:
    path = text_pdf(
        tmp_path / "guide.pdf",
        ["Redis keeps the queue in memory.", "", "Chroma stores vectors on disk."],
        title="Storage Guide",
    )
    loaded = load_pdf(path, "guide")
    assert loaded.title == "Storage Guide"
    assert [(s.page, s.text) for s in loaded.sections] == [
        (1, "Redis keeps the queue in memory."),
        (3, "Chroma stores vectors on disk."),
    ]
    assert all(s.heading is None for s in loaded.sections)


def test_title_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    loaded = load_pdf(text_pdf(tmp_path / "x.pdf", ["Some text."]), "quarterly-report")
    assert loaded.title == "quarterly-report"


@needs_ocr_tools
def test_image_only_page_is_read_by_ocr(tmp_path: Path) -> None:
    text = text_pdf(tmp_path / "text.pdf", ["Typed page about queues."])
    scan = scanned_pdf(tmp_path / "scan.pdf", ["Restart the ingestion worker", "after rotation."])
    writer = PdfWriter()
    writer.append(str(text))
    writer.append(str(scan))
    mixed = tmp_path / "mixed.pdf"
    writer.write(str(mixed))

    loaded = load_pdf(mixed, "mixed")
    assert [s.page for s in loaded.sections] == [1, 2]
    assert loaded.sections[0].text == "Typed page about queues."
    ocr_text = loaded.sections[1].text.lower()
    assert "restart" in ocr_text and "ingestion" in ocr_text and "worker" in ocr_text


def test_image_only_page_without_ocr_tools_needs_ocr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = scanned_pdf(tmp_path / "scan.pdf", ["Nothing to extract here"])
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # as on a machine without tesseract/pdftoppm
    with pytest.raises(NeedsOCR, match="tesseract"):
        load_pdf(scan, "scan")


def test_corrupt_pdf_is_a_load_error(tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "good.pdf", ["Corrupt me."]).read_bytes()
    middle = len(good) // 2
    bad = tmp_path / "corrupt.pdf"
    bad.write_bytes(good[:200] + b"\x00garbage\xff" * 50 + good[middle:])
    with pytest.raises(DocumentLoadError, match="PDF"):
        load_pdf(bad, "corrupt")


def test_pdf_without_a_cross_reference_table_is_corrupt(tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "good.pdf", ["No xref."]).read_bytes()
    bad = tmp_path / "noxref.pdf"
    bad.write_bytes(good[: good.rfind(b"xref")] + b"%%EOF\n")
    with pytest.raises(DocumentLoadError, match="corrupt PDF"):
        load_pdf(bad, "noxref")


def test_truncated_pdf_is_a_load_error(tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "good.pdf", ["Cut short. " * 200]).read_bytes()
    cut = tmp_path / "truncated.pdf"
    cut.write_bytes(good[: len(good) * 2 // 3])
    with pytest.raises(DocumentLoadError, match="truncated"):
        load_pdf(cut, "truncated")


def test_not_a_pdf_is_a_load_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.pdf"
    fake.write_text("<html>not a pdf</html>")
    with pytest.raises(DocumentLoadError, match="not a PDF"):
        load_pdf(fake, "fake")


def garbage_layer_pdf(path: Path, lines: list[str], garbage: str) -> Path:
    """A scan whose embedded text layer is garbage (a bad OCR of the scanner): the page has a
    picture of ``lines`` and the text ``garbage``."""
    image = Image.new("L", (1654, 1100), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 44) if FONT.exists() else ImageFont.load_default(44)
    for row, line in enumerate(lines):
        draw.text((150, 200 + row * 80), line, fill=0, font=font)
    picture = path.with_suffix(".png")
    image.save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), x=0, y=30, w=210)
    pdf.set_font("helvetica", size=8)
    pdf.text_mode = TextMode.INVISIBLE  # as a scanner's OCR layer: extracted, never drawn
    pdf.cell(0, 5, garbage)
    pdf.output(str(path))
    return path


@needs_ocr_tools
def test_force_ocr_replaces_a_garbage_text_layer(tmp_path: Path) -> None:
    """Issue 21 item 10: without force_ocr the garbage layer is all that is read."""
    path = garbage_layer_pdf(tmp_path / "scan.pdf", ["Rotate the credentials monthly"], "xq7 zzv")
    assert [s.text for s in load_pdf(path, "scan").sections] == ["xq7 zzv"]
    (section,) = load_pdf(path, "scan", force_ocr=True).sections
    assert "rotate" in section.text.lower() and "credentials" in section.text.lower()
    assert "xq7" not in section.text
