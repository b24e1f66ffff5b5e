"""Limits on untrusted documents, checked before the expensive step they protect.

- Office files (.docx) are zip archives: their central directory states every member's
  uncompressed size, so a zip bomb is refused before one byte is inflated
  (:func:`check_archive`).
- PDFs: the page count before any page is read, and the area of each page that needs OCR in
  pixels at the OCR resolution before it is rendered (:func:`check_page_count`,
  :func:`check_ocr_page`).

The process-level limits (memory, CPU time, wall time, output size) are applied by
:mod:`app.ingest.sandbox`. Every limit comes from the settings (``INGEST_MAX_*``), so the
reasons name the variable that raises it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.core.settings import Settings, get_settings
from app.ingest.models import DocumentLoadError

MB = 1024 * 1024
POINTS_PER_INCH = 72


class LimitExceeded(DocumentLoadError):
    """A document is over one of the ingestion limits; the reason names the limit."""


@dataclass(frozen=True)
class IngestLimits:
    memory_mb: int
    cpu_seconds: int
    wall_seconds: int
    output_mb: int
    expanded_mb: int
    compression_ratio: int
    max_pages: int
    page_megapixels: float

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            memory_mb=settings.INGEST_MAX_MEMORY_MB,
            cpu_seconds=settings.INGEST_MAX_CPU_SECONDS,
            wall_seconds=settings.INGEST_MAX_WALL_SECONDS,
            output_mb=settings.INGEST_MAX_OUTPUT_MB,
            expanded_mb=settings.INGEST_MAX_EXPANDED_MB,
            compression_ratio=settings.INGEST_MAX_COMPRESSION_RATIO,
            max_pages=settings.INGEST_MAX_PAGES,
            page_megapixels=settings.INGEST_MAX_PAGE_MEGAPIXELS,
        )


_chosen: IngestLimits | None = None


def use_limits(limits: IngestLimits | None) -> None:
    """Make ``limits`` the ones the loaders check (the sandbox child gets them from its
    parent); None goes back to the settings."""
    global _chosen
    _chosen = limits


def active_limits() -> IngestLimits:
    return _chosen or IngestLimits.from_settings(get_settings())


def check_archive(path: Path, limits: IngestLimits | None = None) -> None:
    """Refuse a zip whose members would expand beyond the size or ratio limits (reads only the
    central directory; raises LimitExceeded)."""
    limits = limits or active_limits()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DocumentLoadError(f"corrupt or unreadable .docx file: {exc}") from exc
    expanded = sum(m.file_size for m in members)
    if expanded > limits.expanded_mb * MB:
        raise LimitExceeded(
            f"document expands beyond {limits.expanded_mb} MB ({expanded / MB:.0f} MB "
            "uncompressed; limit INGEST_MAX_EXPANDED_MB)"
        )
    compressed = sum(m.compress_size for m in members)
    ratio = expanded / max(compressed, 1)
    if ratio > limits.compression_ratio:
        raise LimitExceeded(
            f"document is compressed {ratio:.0f}:1, beyond the {limits.compression_ratio}:1 limit "
            "(INGEST_MAX_COMPRESSION_RATIO); it looks like a zip bomb"
        )


def check_page_count(pages: int, limits: IngestLimits | None = None) -> None:
    limits = limits or active_limits()
    if pages > limits.max_pages:
        raise LimitExceeded(
            f"the PDF has {pages} pages; the limit is {limits.max_pages} (INGEST_MAX_PAGES)"
        )


def check_ocr_page(
    number: int, width_pt: float, height_pt: float, dpi: int, limits: IngestLimits | None = None
) -> None:
    """Refuse to render a page whose bitmap at ``dpi`` would exceed the pixel limit."""
    limits = limits or active_limits()
    width_in, height_in = width_pt / POINTS_PER_INCH, height_pt / POINTS_PER_INCH
    megapixels = (width_in * dpi) * (height_in * dpi) / 1e6
    if megapixels > limits.page_megapixels:
        raise LimitExceeded(
            f"page {number} is {width_in:.0f} x {height_in:.0f} inches ({megapixels:,.0f} "
            f"megapixels at {dpi} dpi); the limit for OCR is {limits.page_megapixels:g} "
            "megapixels (INGEST_MAX_PAGE_MEGAPIXELS)"
        )
