"""Uploaded documents under ``DOCUMENTS_PATH``.

Layout::

    DOCUMENTS_PATH/files/<sha256>.<ext>  the bytes, named by their content
    DOCUMENTS_PATH/meta/<id>.json        DocumentMeta (id = first 16 hex chars of the sha256)
    DOCUMENTS_PATH/tmp/                  uploads in progress (same filesystem: renames are atomic)

The name a user gave is sanitised and kept for display only; it never becomes a path. Every write
goes to a temporary file first and is moved into place with ``os.replace`` (or ``os.link`` when
the target must not exist yet), so a reader sees the old or the new content, never a partial one.
Uploading the same bytes twice gives the same id and one stored copy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mimetypes
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, Field, ValidationError

from app.core.settings import Settings

BLOCK_SIZE = 1024 * 1024
ID_LENGTH = 16
MAX_NAME_CHARS = 200
_ID = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f<>:\"|?*]")
CONTENT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class DocumentStatus(StrEnum):
    queued = "queued"
    ingesting = "ingesting"
    ingested = "ingested"
    failed = "failed"


class DocumentMeta(BaseModel):
    id: str = Field(pattern=_ID.pattern)
    filename: str
    extension: str
    content_type: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: DocumentStatus = DocumentStatus.queued
    chunks: int | None = None
    error: str | None = None
    uploaded_at: datetime
    ingested_at: datetime | None = None

    @property
    def stored_name(self) -> str:
        return f"{self.sha256}{self.extension}"


class StorageFull(Exception):
    """The documents volume has no space left: nothing of the file was kept."""


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class UploadRejected(Exception):
    """A file refused at upload; ``status_code`` is the HTTP status that fits the reason."""

    def __init__(self, filename: str, reason: str, status_code: int) -> None:
        super().__init__(reason)
        self.filename = filename
        self.reason = reason
        self.status_code = status_code


def sanitize_filename(name: str | None) -> str:
    """A display name safe to show and log: last path component only, no control or reserved
    characters, no leading dots, at most MAX_NAME_CHARS characters (the extension kept)."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").split("/")[-1]
    text = _UNSAFE.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"})
    text = " ".join(text.split()).lstrip(". ").rstrip(" ")
    if len(text) > MAX_NAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = f"{stem[: MAX_NAME_CHARS - len(ext) - 1]}.{ext}"
        else:
            text = text[:MAX_NAME_CHARS]
    return text or "document"


def extension_of(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return f".{ext.lower()}" if dot and ext else ""


def _now() -> datetime:
    return datetime.now(UTC)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows opening a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DocumentStore:
    def __init__(
        self,
        root: Path,
        *,
        allowed_extensions: list[str] | tuple[str, ...] = tuple(CONTENT_TYPES),
        max_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.meta_dir = root / "meta"
        self.tmp_dir = root / "tmp"
        self.allowed_extensions = tuple(e.lower() for e in allowed_extensions)
        self.max_bytes = max_bytes
        for folder in (self.files_dir, self.meta_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentStore:
        return cls(
            settings.DOCUMENTS_PATH,
            allowed_extensions=settings.ALLOWED_EXTENSIONS,
            max_bytes=settings.max_upload_bytes,
        )

    # --- paths ------------------------------------------------------------------------------
    def _meta_path(self, document_id: str) -> Path:
        if not _ID.match(document_id):
            raise KeyError(document_id)
        return self.meta_dir / f"{document_id}.json"

    def file_path(self, meta: DocumentMeta) -> Path:
        return self.files_dir / meta.stored_name

    # --- writes -----------------------------------------------------------------------------
    def _tmp(self, suffix: str) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=suffix)
        return fd, Path(name)

    def _write_meta(self, meta: DocumentMeta, *, create: bool) -> bool:
        """Write ``meta`` atomically. With ``create``, only if no metadata exists yet (returns
        False when another upload of the same content got there first)."""
        fd, tmp = self._tmp(".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(meta.model_dump_json(indent=2))
                handle.flush()
                os.fsync(handle.fileno())
            target = self._meta_path(meta.id)
            if create:
                try:
                    os.link(tmp, target)  # atomic create-if-absent
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, target)
            _fsync_dir(self.meta_dir)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def check_name(self, filename: str | None) -> tuple[str, str]:
        """(display name, extension) or UploadRejected(415) for a type that is not allowed."""
        display = sanitize_filename(filename)
        extension = extension_of(display)
        if extension not in self.allowed_extensions:
            allowed = ", ".join(self.allowed_extensions)
            shown = extension or "no extension"
            raise UploadRejected(
                display, f"unsupported file type ({shown}); allowed: {allowed}", 415
            )
        return display, extension

    def save(
        self, source: BinaryIO, filename: str | None, content_type: str | None = None
    ) -> tuple[DocumentMeta, bool]:
        """Stream ``source`` to disk in blocks, hashing as it goes; stop past ``max_bytes``.

        Returns (metadata, created). ``created`` is False when the same content was stored
        already: the existing metadata comes back unchanged (a failed one is queued again).
        """
        display, extension = self.check_name(filename)
        try:
            return self._save(source, display, extension)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise StorageFull(f"no space left on the documents volume ({display})") from exc
            raise

    def _save(self, source: BinaryIO, display: str, extension: str) -> tuple[DocumentMeta, bool]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = self._tmp(extension)
        try:
            with os.fdopen(fd, "wb") as handle:
                while block := source.read(BLOCK_SIZE):
                    size += len(block)
                    if size > self.max_bytes:
                        limit = self.max_bytes / (1024 * 1024)
                        raise UploadRejected(display, f"file is larger than {limit:g} MB", 413)
                    digest.update(block)
                    handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())
            if size == 0:
                raise UploadRejected(display, "empty file", 422)
            sha = digest.hexdigest()
            meta = DocumentMeta(
                id=sha[:ID_LENGTH],
                filename=display,
                extension=extension,
                content_type=CONTENT_TYPES.get(extension)
                or mimetypes.guess_type(display)[0]
                or "application/octet-stream",
                size=size,
                sha256=sha,
                uploaded_at=_now(),
            )
            existing = self.get(meta.id)
            if existing is not None and self.file_path(existing).exists():
                return self._requeue_failed(existing), False
            target = self.file_path(meta)
            had_file = target.exists()
            os.replace(tmp, target)
            _fsync_dir(self.files_dir)
            try:
                written = self._write_meta(meta, create=existing is None)
            except OSError:  # no record: do not keep a file nothing refers to
                if not had_file and existing is None:
                    target.unlink(missing_ok=True)
                raise
            if written:
                return meta, True
            current = self.get(meta.id)
            return (current or meta), False
        finally:
            tmp.unlink(missing_ok=True)

    def _requeue_failed(self, meta: DocumentMeta) -> DocumentMeta:
        if meta.status != DocumentStatus.failed:
            return meta
        return self.update(meta.id, status=DocumentStatus.queued, error=None)

    def update(self, document_id: str, **changes: object) -> DocumentMeta:
        """Change fields of a document's metadata (atomically); KeyError if it is gone."""
        current = self.get(document_id)
        if current is None:
            raise KeyError(document_id)
        updated = DocumentMeta.model_validate({**current.model_dump(), **changes})
        self._write_meta(updated, create=False)
        return updated

    def mark(
        self,
        document_id: str,
        status: DocumentStatus,
        *,
        chunks: int | None = None,
        error: str | None = None,
    ) -> DocumentMeta | None:
        """Set a document's status; None when the document was deleted meanwhile."""
        changes: dict[str, object] = {"status": status, "error": error}
        if status == DocumentStatus.ingested:
            changes |= {"chunks": chunks, "ingested_at": _now()}
        elif status == DocumentStatus.failed:
            changes |= {"chunks": None}
        try:
            return self.update(document_id, **changes)
        except KeyError:
            return None

    # --- reads ------------------------------------------------------------------------------
    def get(self, document_id: str) -> DocumentMeta | None:
        try:
            raw = self._meta_path(document_id).read_text(encoding="utf-8")
        except (KeyError, FileNotFoundError):
            return None
        try:
            return DocumentMeta.model_validate_json(raw)
        except ValidationError:
            return None

    def meta_mtime(self, document_id: str) -> float:
        """When a document's record last changed (its status included); FileNotFoundError if
        it is gone. The ingestion reconciler leaves recently changed records alone."""
        try:
            return self._meta_path(document_id).stat().st_mtime
        except KeyError:
            raise FileNotFoundError(document_id) from None

    def _ids(self) -> Iterator[str]:
        for path in self.meta_dir.glob("*.json"):
            if _ID.match(path.stem):
                yield path.stem

    def list(self) -> list[DocumentMeta]:
        """Every document, oldest upload first."""
        found = [meta for meta in map(self.get, self._ids()) if meta is not None]
        return sorted(found, key=lambda m: (m.uploaded_at, m.id))

    # --- delete -----------------------------------------------------------------------------
    def delete(self, document_id: str) -> bool:
        """Remove a document's metadata, then its file. False if it did not exist."""
        meta = self.get(document_id)
        if meta is None:
            return False
        self._meta_path(document_id).unlink(missing_ok=True)
        self.file_path(meta).unlink(missing_ok=True)
        return True
