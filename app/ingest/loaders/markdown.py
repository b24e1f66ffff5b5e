"""Markdown: one section per heading, named by its heading path ("Runbooks > Restart Worker").

The document's single top-level heading is its title and is left out of the paths. Headings
inside fenced code blocks are text, not headings. ATX (``## x``) and setext (underlined)
headings are recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.ingest.loaders.text import clean_text, read_text, require_text
from app.ingest.models import LoadedDocument
from app.rag.chunking import Section

MAX_HEADING_CHARS = 300  # longer "headings" are cut before their marks are cleaned
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")


def atx_heading(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line (``## Text ##``), else None; text may be empty.

    Linear in the line: the regex it replaces (``^ {0,3}(#{1,6})(?:[ \\t]+(.*?))?(?:[ \\t]+#+)?
    [ \\t]*$``) backtracked over every run of spaces inside the heading, quadratic in its length.
    """
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return None
    level = len(stripped) - len(stripped.lstrip("#"))
    rest = stripped[level:]
    if not 1 <= level <= 6 or (rest and rest[0] not in " \t"):
        return None
    text = rest.strip(" \t")
    bare = text.rstrip("#")
    if bare and bare != text and bare[-1] in " \t":  # a closing sequence: "## Text ##"
        text = bare.rstrip(" \t")
    return level, text


@dataclass
class _Heading:
    level: int
    text: str
    line: int


def clean_heading(text: str) -> str:
    """Heading text without links, emphasis and code marks (at most MAX_HEADING_CHARS of it:
    the link and emphasis patterns are not linear on long runs of brackets or marks)."""
    text = text[:MAX_HEADING_CHARS]
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return " ".join(text.split()).strip()


def _find_headings(lines: list[str]) -> list[_Heading]:
    headings: list[_Heading] = []
    fence: str | None = None
    for number, line in enumerate(lines):
        marker = _FENCE.match(line)
        if marker:
            token = marker.group(1)
            if fence is None:
                fence = token[0]
            elif token[0] == fence:
                fence = None
            continue
        if fence is not None:
            continue
        atx = atx_heading(line)
        if atx and atx[1]:
            headings.append(_Heading(atx[0], clean_heading(atx[1]), number))
            continue
        setext = _SETEXT.match(line)
        previous = lines[number - 1] if number else ""
        if (
            setext
            and previous.strip()
            and not atx_heading(previous)
            and not (headings and headings[-1].line == number - 1)
            and (number < 2 or not lines[number - 2].strip())
        ):
            level = 1 if setext.group(1).startswith("=") else 2
            headings.append(_Heading(level, clean_heading(previous), number - 1))
    return headings


def parse_markdown(source: str, fallback_title: str) -> LoadedDocument:
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings = _find_headings(lines)
    top_level = [h for h in headings if h.level == 1]
    title_heading = top_level[0] if len(top_level) == 1 else None
    title = title_heading.text if title_heading else (headings[0].text if headings else "")

    sections: list[Section] = []
    stack: list[_Heading] = []
    starts = [*headings, _Heading(0, "", len(lines))]
    body_start = 0
    current: str | None = None
    for heading in starts:
        body = lines[body_start : heading.line]
        text = clean_text("\n".join(body))
        if text:
            sections.append(Section(text=text, heading=current))
        if heading.level == 0:
            break
        setext_underline = heading.line + 1 < len(lines) and _SETEXT.match(lines[heading.line + 1])
        is_setext = setext_underline and not atx_heading(lines[heading.line])
        body_start = heading.line + (2 if is_setext else 1)
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        path = [h.text for h in stack if h is not title_heading]
        current = " > ".join(path) if path else None
    sections = require_text(sections, "Markdown file")
    return LoadedDocument(title=title or fallback_title, sections=sections)


def load_markdown(path: Path, fallback_title: str) -> LoadedDocument:
    return parse_markdown(read_text(path), fallback_title)
