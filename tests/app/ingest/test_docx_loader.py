from __future__ import annotations

from pathlib import Path

import docx
import pytest

from app.ingest.loaders.docx import load_docx
from app.ingest.models import DocumentLoadError


def test_heading_styles_cut_sections_and_tables_are_text(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Incident Process", level=1)
    document.add_paragraph("Declare an incident in the ops channel.")
    document.add_heading("Severity", level=2)
    document.add_paragraph("P1 means customers are blocked.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Level", "Response"
    table.cell(1, 0).text, table.cell(1, 1).text = "P1", "15 minutes"
    document.add_heading("Roles", level=3)
    document.add_paragraph("Incident commander and scribe.")
    document.add_heading("Postmortem", level=2)
    document.add_paragraph("Within five working days.")
    path = tmp_path / "incident.docx"
    document.save(str(path))

    loaded = load_docx(path, "incident")
    assert loaded.title == "Incident Process"
    assert [s.heading for s in loaded.sections] == [
        None,
        "Severity",
        "Severity > Roles",
        "Postmortem",
    ]
    assert loaded.sections[0].text == "Declare an incident in the ops channel."
    assert "P1 | 15 minutes" in loaded.sections[1].text
    assert loaded.sections[3].text == "Within five working days."


def test_core_title_wins_over_first_heading(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Deployment Guide"
    document.add_paragraph("Deploy with the pipeline.")
    path = tmp_path / "deploy.docx"
    document.save(str(path))
    loaded = load_docx(path, "deploy")
    assert loaded.title == "Deployment Guide"
    assert loaded.sections[0].heading is None


def test_not_a_docx_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_bytes(b"PK\x03\x04 this is not a real zip")
    with pytest.raises(DocumentLoadError, match="docx"):
        load_docx(path, "fake")


def test_a_docx_with_truncated_xml_is_a_load_error_not_a_crash(tmp_path: Path) -> None:
    """lxml raises XMLSyntaxError (a SyntaxError) on a damaged part: load_document must still
    turn it into a DocumentLoadError, so the document is marked failed with a reason."""
    import zipfile

    from app.ingest import load_document

    good = tmp_path / "good.docx"
    document = docx.Document()
    document.add_paragraph("Backups are verified every Friday.")
    document.save(str(good))
    broken = tmp_path / "broken.docx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    with pytest.raises(DocumentLoadError, match=r"cannot read \.docx file"):
        load_document(broken, "broken.docx")
