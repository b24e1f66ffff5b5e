"""Plain-text files, and the text clean-up every loader shares."""

from __future__ import annotations

import re
from pathlib import Path

from app.ingest.models import DocumentLoadError, LoadedDocument
from app.rag.chunking import Section

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def decode_text(data: bytes) -> str:
    """Decode bytes as UTF-8 (with or without BOM), falling back to Windows-1252 then Latin-1."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # pragma: no cover - latin-1 decodes any byte string


def clean_text(text: str) -> str:
    """Normalise newlines and spaces, drop control characters, keep paragraphs apart by one
    blank line (the chunker packs paragraphs)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def read_text(path: Path) -> str:
    return decode_text(path.read_bytes())


def require_text(sections: list[Section], what: str) -> list[Section]:
    """Keep the sections holding text; raise DocumentLoadError when none does."""
    kept = [s for s in sections if s.text.strip()]
    if not kept:
        raise DocumentLoadError(f"no text found in the {what}")
    return kept


def load_text(path: Path, fallback_title: str) -> LoadedDocument:
    text = clean_text(read_text(path))
    sections = require_text([Section(text=text)], "text file")
    return LoadedDocument(title=fallback_title, sections=sections)
