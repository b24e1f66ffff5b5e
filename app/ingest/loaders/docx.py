"""Word (.docx): paragraphs and tables in document order, one section per heading style
("Heading 1".."Heading 9"; "Title" names the document)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from docx import Document
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from app.ingest.limits import check_archive
from app.ingest.loaders.text import clean_text, require_text
from app.ingest.models import DocumentLoadError, LoadedDocument
from app.rag.chunking import Section

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def heading_level(paragraph: Paragraph) -> int | None:
    """1-9 for "Heading N" styles, 0 for "Title", None for body text."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(name or "")
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def load_docx(path: Path, fallback_title: str) -> LoadedDocument:
    check_archive(path)  # python-docx inflates each part whole: refuse zip bombs first
    try:
        document = Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentLoadError(f"corrupt or unreadable .docx file: {exc}") from exc

    title = (document.core_properties.title or "").strip()
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    parts: list[str] = []
    heading: str | None = None

    def flush() -> None:
        text = clean_text("\n\n".join(parts))
        if text:
            sections.append(Section(text=text, heading=heading))
        parts.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.append(_table_text(block))
            continue
        level = heading_level(block)
        text = " ".join(block.text.split())
        if level is None:
            parts.append(block.text)
            continue
        if not text:
            continue
        if level == 0:
            title = title or text
            continue
        flush()
        title = title or text
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        path_parts = [t for lvl, t in stack if not (lvl == 1 and t == title)]
        heading = " > ".join(path_parts) or None
    flush()
    sections = require_text(sections, ".docx file")
    return LoadedDocument(title=title or fallback_title, sections=sections)
