"""Split documents into chunks that follow their structure.

Loaders (``app.ingest``) turn a file into :class:`Section` objects: a heading's body, a PDF
page, a whole text file. Chunks never straddle two sections. Inside a section, paragraphs are
packed greedily up to ``chunk_size`` characters; a paragraph longer than that is cut at sentence
(then word) boundaries. Each chunk after the first in a section starts with up to ``overlap``
characters from the end of the previous one, cut at a word boundary, so a fact that spans a
boundary is still retrievable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Section:
    text: str
    heading: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str | None
    page: int | None
    index: int


def _pieces(paragraph: str, limit: int) -> list[str]:
    """Cut one paragraph into pieces of at most ``limit`` characters."""
    if len(paragraph) <= limit:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for unit in _SENTENCE_END.split(paragraph):
        words = [unit] if len(unit) <= limit else unit.split()
        for word in words:
            while len(word) > limit:  # a single token longer than the limit
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(word[:limit])
                word = word[limit:]
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= limit:
                current = candidate
            else:
                pieces.append(current)
                current = word
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, starting at a word boundary."""
    if overlap <= 0 or not text:
        return ""
    tail = text[-overlap:]
    if len(text) > overlap and not text[-overlap - 1].isspace():
        cut = tail.find(" ")
        tail = tail[cut + 1 :] if cut >= 0 else ""
    return tail.strip()


def chunk_sections(sections: Iterable[Section], chunk_size: int, overlap: int) -> list[Chunk]:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if not 0 <= overlap < chunk_size:
        raise ValueError("overlap must be at least 0 and smaller than chunk_size")
    chunks: list[Chunk] = []
    for section in sections:
        paragraphs = [
            " ".join(p.split()) for p in _PARAGRAPH_BREAK.split(section.text) if p.strip()
        ]
        budget = chunk_size - overlap  # room left for new text once the overlap is prepended
        pieces = [piece for p in paragraphs for piece in _pieces(p, budget)]
        current = ""
        carried = ""  # overlap text at the start of `current`
        for piece in pieces:
            candidate = f"{current}\n\n{piece}" if current else piece
            if len(candidate) <= chunk_size:
                current = candidate
                continue
            if current and current != carried:
                chunks.append(Chunk(current, section.heading, section.page, len(chunks)))
            carried = _tail(current, overlap)
            current = f"{carried} {piece}" if carried else piece
        if current and current != carried:
            chunks.append(Chunk(current, section.heading, section.page, len(chunks)))
    return chunks
