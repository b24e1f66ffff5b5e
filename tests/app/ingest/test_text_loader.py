from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest.loaders.text import clean_text, decode_text, load_text
from app.ingest.models import DocumentLoadError


def test_whole_file_is_one_section_with_paragraphs_kept(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First  paragraph\r\nstill first.\r\n\r\n\r\n\r\nSecond\x00 paragraph.\r\n")
    loaded = load_text(path, "notes")
    assert loaded.title == "notes"
    assert len(loaded.sections) == 1
    section = loaded.sections[0]
    assert section.heading is None and section.page is None
    assert section.text == "First paragraph\nstill first.\n\nSecond paragraph."


def test_legacy_encodings_are_decoded() -> None:
    assert decode_text("café".encode("cp1252")) == "café"
    assert decode_text("\ufeffcafé".encode()) == "café"


def test_blank_file_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\n")
    with pytest.raises(DocumentLoadError, match="no text"):
        load_text(path, "blank")


def test_clean_text_collapses_spaces_and_blank_runs() -> None:
    assert clean_text("a\t\tb\u00a0 c\n\n\n\nd ") == "a b c\n\nd"
