"""What a loader returns, and the ways loading a document can fail."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.rag.chunking import Section


class IngestError(Exception):
    """Base class: a document cannot be turned into sections. ``reason`` is shown to users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedFileType(IngestError):
    """The file's extension has no loader (or is not in ALLOWED_EXTENSIONS)."""


class DocumentLoadError(IngestError):
    """The file is corrupt, truncated, encrypted or holds no text."""


class NeedsOCR(IngestError):
    """Pages are images only and OCR tools (ocrmypdf / tesseract, pdftoppm) are missing."""


@dataclass(frozen=True)
class LoadedDocument:
    """A document's title and its text split into sections (by heading, page or whole file)."""

    title: str
    sections: list[Section] = field(default_factory=list)

    @property
    def text_length(self) -> int:
        return sum(len(s.text) for s in self.sections)
