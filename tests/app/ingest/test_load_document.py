from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest import UnsupportedFileType, chunk_records, load_document


def test_dispatches_on_the_display_name_not_the_stored_name(tmp_path: Path) -> None:
    stored = tmp_path / "0123abcd.md"  # content-addressed name on disk
    stored.write_text("# Title\n\n## Part\nbody text")
    loaded = load_document(stored, "notes.md")
    assert loaded.title == "Title"
    assert loaded.sections[0].heading == "Part"
    as_text = load_document(stored, "notes.txt")
    assert as_text.title == "notes" and as_text.sections[0].text.startswith("# Title")


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.exe"
    path.write_bytes(b"MZ")
    with pytest.raises(UnsupportedFileType, match=r"\.exe"):
        load_document(path, "data.exe")


def test_records_carry_source_metadata_and_a_context_line(tmp_path: Path) -> None:
    path = tmp_path / "ops.md"
    body = " ".join(f"Sentence {n} about draining the queue." for n in range(40))
    path.write_text(f"# Ops Guide\n\nPreamble.\n\n## Restart Worker\n{body}\n")
    loaded = load_document(path, "ops.md")
    records = chunk_records("abcdef0123456789", "ops.md", loaded, chunk_size=400, overlap=50)
    assert [r.id for r in records] == [f"abcdef0123456789:{i}" for i in range(len(records))]
    assert len(records) > 3
    first, second = records[0], records[1]
    assert first.metadata == {
        "document_id": "abcdef0123456789",
        "document": "ops.md",
        "title": "Ops Guide",
        "heading": "",
        "page": 0,
        "chunk": 0,
    }
    assert first.text == "Ops Guide\n\nPreamble."
    assert second.metadata["heading"] == "Restart Worker"
    assert second.text.startswith("Ops Guide > Restart Worker\n\nSentence 0")
    assert all(None not in r.metadata.values() for r in records)
