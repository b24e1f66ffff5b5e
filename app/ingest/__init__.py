"""Ingestion: turn an uploaded file into sections (``load_document``), then into the chunk
records the vector store embeds (``chunk_records``).

Both the worker jobs (``app.ingest.jobs``) and the evaluation command (``app.rag.eval``) go
through these two functions, so what is measured is what is served. May import core,
observability, contracts and the other service packages; never api or local; only
``app.ingest.worker`` imports the chat worker (its pool builds on ``FlowchatWorker``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.ingest.loaders.docx import load_docx
from app.ingest.loaders.html import load_html
from app.ingest.loaders.markdown import load_markdown
from app.ingest.loaders.pdf import load_pdf
from app.ingest.loaders.text import load_text
from app.ingest.models import (
    DocumentLoadError,
    IngestError,
    LoadedDocument,
    NeedsOCR,
    UnsupportedFileType,
)
from app.rag.chunking import Chunk, chunk_sections
from app.rag.vectorstore import ChunkRecord

__all__ = [
    "LOADERS",
    "DocumentLoadError",
    "IngestError",
    "LoadedDocument",
    "NeedsOCR",
    "UnsupportedFileType",
    "chunk_records",
    "embedded_text",
    "load_document",
]

Loader = Callable[[Path, str], LoadedDocument]

LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def load_document(path: Path, filename: str, *, force_ocr: bool = False) -> LoadedDocument:
    """Load ``path`` with the loader for ``filename``'s extension (the stored file may have a
    content-addressed name; ``filename`` is the display name the user gave). ``force_ocr``
    (PDFs only) OCRs every page that holds an image."""
    name = Path(filename.replace("\\", "/")).name
    suffix = Path(name).suffix.lower() or path.suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        known = ", ".join(sorted(LOADERS))
        raise UnsupportedFileType(f"unsupported file type {suffix or '(none)'!r}; use {known}")
    fallback_title = Path(name).stem or path.stem
    if force_ocr and suffix != ".pdf":
        raise UnsupportedFileType(f"OCR applies to PDF files only, not {suffix}")
    try:
        if force_ocr:
            return load_pdf(path, fallback_title, force_ocr=True)
        return loader(path, fallback_title)
    except (IngestError, MemoryError):  # MemoryError: the sandbox reports its memory limit
        raise
    except Exception as exc:  # parsers raise anything on damaged files (lxml: XMLSyntaxError)
        raise DocumentLoadError(f"cannot read {suffix} file: {type(exc).__name__}: {exc}") from exc


def embedded_text(title: str, chunk: Chunk) -> str:
    """The text stored and embedded for a chunk: its context line ("title > heading") first,
    so a chunk whose body never repeats the topic still matches questions about it."""
    context = " > ".join(part for part in (title, chunk.heading) if part)
    return f"{context}\n\n{chunk.text}" if context else chunk.text


def displayed_text(text: str, title: str | None, heading: str | None) -> str:
    """A stored chunk's text without the context line :func:`embedded_text` put in front
    (sources already show the document and heading)."""
    context = " > ".join(part for part in (title, heading) if part)
    prefix = f"{context}\n\n"
    return text[len(prefix) :] if context and text.startswith(prefix) else text


def chunk_records(
    document_id: str,
    filename: str,
    loaded: LoadedDocument,
    *,
    chunk_size: int,
    overlap: int,
) -> list[ChunkRecord]:
    """Chunk a loaded document into records with the metadata the chat path shows as sources."""
    chunks = chunk_sections(loaded.sections, chunk_size, overlap)
    return [
        ChunkRecord(
            id=f"{document_id}:{chunk.index}",
            text=embedded_text(loaded.title, chunk),
            metadata={
                "document_id": document_id,
                "document": filename,
                "title": loaded.title,
                "heading": chunk.heading or "",
                "page": chunk.page or 0,
                "chunk": chunk.index,
            },
        )
        for chunk in chunks
    ]
