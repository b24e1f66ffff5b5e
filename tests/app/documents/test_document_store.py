from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path

import pytest

from app.documents.store import (
    DocumentStatus,
    DocumentStore,
    UploadRejected,
    sanitize_filename,
)


class CountingStream(io.RawIOBase):
    """An endless upload that records how much was read from it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "the store must read in bounded blocks, never everything"
        self.served += size
        return b"x" * size


@pytest.fixture
def store(tmp_path: Path) -> DocumentStore:
    return DocumentStore(tmp_path / "docs", allowed_extensions=[".md", ".txt", ".pdf"],
                         max_bytes=3 * 1024 * 1024)  # fmt: skip


def test_saved_file_is_content_addressed_with_metadata(store: DocumentStore) -> None:
    data = b"# Redis\n\nAOF on.\n"
    meta, created = store.save(io.BytesIO(data), "redis.md", "text/plain")
    sha = hashlib.sha256(data).hexdigest()
    assert created
    assert meta.id == sha[:16] and meta.sha256 == sha
    assert meta.filename == "redis.md" and meta.content_type == "text/markdown"
    assert meta.size == len(data) and meta.status == DocumentStatus.queued
    assert meta.chunks is None and meta.error is None and meta.ingested_at is None
    assert (store.files_dir / f"{sha}.md").read_bytes() == data
    on_disk = json.loads((store.meta_dir / f"{meta.id}.json").read_text())
    assert on_disk["id"] == meta.id and on_disk["status"] == "queued"
    assert store.get(meta.id) == meta
    assert list(store.tmp_dir.iterdir()) == []


def test_same_content_again_is_idempotent(store: DocumentStore) -> None:
    first, created = store.save(io.BytesIO(b"same bytes"), "a.txt")
    store.mark(first.id, DocumentStatus.ingested, chunks=3)
    again, created_again = store.save(io.BytesIO(b"same bytes"), "renamed.txt")
    assert created and not created_again
    assert again.id == first.id and again.filename == "a.txt"
    assert again.status == DocumentStatus.ingested and again.chunks == 3
    assert len(store.list()) == 1
    assert len(list(store.files_dir.iterdir())) == 1


def test_reupload_of_a_failed_document_queues_it_again(store: DocumentStore) -> None:
    meta, _ = store.save(io.BytesIO(b"broken"), "b.txt")
    store.mark(meta.id, DocumentStatus.failed, error="no text")
    again, created = store.save(io.BytesIO(b"broken"), "b.txt")
    assert not created
    assert again.status == DocumentStatus.queued and again.error is None


def test_concurrent_uploads_of_the_same_content_create_one_document(
    store: DocumentStore,
) -> None:
    results: list[bool] = []
    payload = b"raced content " * 1000

    def upload() -> None:
        results.append(store.save(io.BytesIO(payload), "race.txt")[1])

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert len(store.list()) == 1


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("..\\..\\windows\\system32\\evil.txt", "evil.txt"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("line\nbreak\r\tand\x1bescape.md", "linebreakandescape.md"),
        ("...hidden.md", "hidden.md"),
        ("/", "document"),
        ("\u202egnp.md", "gnp.md"),
    ],
)
def test_hostile_names_are_sanitised(hostile: str, expected: str) -> None:
    assert sanitize_filename(hostile) == expected


def test_hostile_name_never_becomes_a_path(store: DocumentStore, tmp_path: Path) -> None:
    meta, _ = store.save(io.BytesIO(b"escape attempt"), "../../../outside.md")
    assert meta.filename == "outside.md"
    assert not (tmp_path / "outside.md").exists()
    stored = [p.name for p in store.root.rglob("*") if p.is_file()]
    assert sorted(stored) == sorted([f"{meta.sha256}.md", f"{meta.id}.json"])


def test_very_long_name_is_shortened_keeping_the_extension(store: DocumentStore) -> None:
    meta, _ = store.save(io.BytesIO(b"long"), "a" * 5000 + ".md")
    assert len(meta.filename) <= 200 and meta.filename.endswith(".md")


def test_unsupported_extension_is_refused_with_the_allowed_list(store: DocumentStore) -> None:
    with pytest.raises(UploadRejected) as info:
        store.save(io.BytesIO(b"MZ"), "tool.exe")
    assert info.value.status_code == 415
    assert ".md" in info.value.reason and ".pdf" in info.value.reason
    assert store.list() == []


def test_empty_file_is_refused(store: DocumentStore) -> None:
    with pytest.raises(UploadRejected, match="empty") as info:
        store.save(io.BytesIO(b""), "empty.txt")
    assert info.value.status_code == 422
    assert store.list() == [] and list(store.tmp_dir.iterdir()) == []


def test_oversized_upload_stops_at_the_limit_without_reading_everything(
    store: DocumentStore,
) -> None:
    stream = CountingStream()
    with pytest.raises(UploadRejected, match="larger than 3 MB") as info:
        store.save(stream, "huge.txt")  # type: ignore[arg-type]
    assert info.value.status_code == 413
    assert stream.served <= store.max_bytes + 1024 * 1024  # at most one block past the limit
    assert store.list() == [] and list(store.tmp_dir.iterdir()) == []
    assert list(store.files_dir.iterdir()) == []


def test_metadata_updates_replace_the_file_atomically(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, _ = store.save(io.BytesIO(b"atomic"), "atomic.txt")
    path = store.meta_dir / f"{meta.id}.json"
    inode_before = path.stat().st_ino

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("app.documents.store.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.mark(meta.id, DocumentStatus.ingested, chunks=7)
    monkeypatch.undo()
    assert store.get(meta.id) == meta  # the old metadata is whole and unchanged
    assert list(store.tmp_dir.iterdir()) == []

    updated = store.mark(meta.id, DocumentStatus.ingested, chunks=7)
    assert updated is not None and updated.chunks == 7 and updated.ingested_at is not None
    assert path.stat().st_ino != inode_before  # a new file was moved into place
    assert store.get(meta.id) == updated


def test_list_get_and_delete(store: DocumentStore) -> None:
    one, _ = store.save(io.BytesIO(b"one"), "one.txt")
    two, _ = store.save(io.BytesIO(b"two"), "two.md")
    assert [m.id for m in store.list()] == [one.id, two.id]
    assert store.get("../../etc/passwd") is None
    assert store.get("0" * 16) is None
    assert store.delete(one.id)
    assert not store.delete(one.id)
    assert store.get(one.id) is None
    assert not store.file_path(one).exists()
    assert [m.id for m in store.list()] == [two.id]
    assert store.mark(one.id, DocumentStatus.failed, error="gone") is None
