"""HTML: text only (no markup; scripts, styles and other non-content elements dropped), one
section per h1-h6, named by the heading path."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup, Comment, NavigableString, Tag
from bs4.element import Doctype, ProcessingInstruction

from app.ingest.loaders.text import clean_text, require_text
from app.ingest.models import DocumentLoadError, LoadedDocument
from app.rag.chunking import Section

DROPPED = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object",
     "embed", "form", "button", "select", "textarea", "nav"}
)  # fmt: skip
HEADINGS = {f"h{n}": n for n in range(1, 7)}
BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
     "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "figure", "figcaption", "hr",
     "address", "details", "summary", "body"}
)  # fmt: skip
LINES = frozenset({"li", "tr", "dt", "dd", "br", "caption"})
CELLS = frozenset({"td", "th"})
PARAGRAPH = "\x1e"  # a paragraph break, resolved after the walk


def collapse_line_breaks(text: str) -> str:
    """Each run of line breaks (with the spaces and tabs around them) becomes one line break.

    Linear in the text: the regex it replaces (``[ \\t]*(?:\\n[ \\t]*)+``) rescanned a long
    run of spaces from every position, quadratic (8,000 spaces took a second)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    middle = [line.strip(" \t") for line in lines[1:-1]]
    kept = [lines[0].rstrip(" \t"), *(m for m in middle if m), lines[-1].lstrip(" \t")]
    return "\n".join(kept)


def resolve_paragraphs(text: str) -> str:
    """Each run of paragraph marks (with the whitespace around them) becomes one blank line,
    in linear time (the regex ``\\s*\\x1e[\\s\\x1e]*`` it replaces was quadratic)."""
    pieces = text.split(PARAGRAPH)
    if len(pieces) == 1:
        return text
    middle = [piece.strip() for piece in pieces[1:-1]]
    kept = [pieces[0].rstrip(), *(m for m in middle if m), pieces[-1].lstrip()]
    return "\n\n".join(kept)


class _Collector:
    """Walks the tree once, in document order, cutting a section at each heading."""

    def __init__(self, title: str) -> None:
        self.sections: list[Section] = []
        self.parts: list[str] = []
        self.stack: list[tuple[int, str]] = []
        self.title = title
        self.first_heading: str | None = None

    def flush(self) -> None:
        raw = collapse_line_breaks("".join(self.parts))
        text = clean_text(resolve_paragraphs(raw))
        if text:
            path = [t for level, t in self.stack if not (level == 1 and t == self.title)]
            self.sections.append(Section(text=text, heading=" > ".join(path) or None))
        self.parts = []

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment | Doctype | ProcessingInstruction):
                continue
            if isinstance(child, NavigableString):
                self.parts.append(str(child).replace("\n", " "))
                continue
            if not isinstance(child, Tag) or child.name in DROPPED:
                continue
            if child.name in HEADINGS:
                self.heading(HEADINGS[child.name], child)
            elif child.name in BLOCKS:
                self.parts.append(PARAGRAPH)
                self.walk(child)
                self.parts.append(PARAGRAPH)
            elif child.name in LINES:
                self.parts.append("\n")
                self.walk(child)
                self.parts.append("\n")
            elif child.name in CELLS:
                self.walk(child)
                self.parts.append(" | ")
            else:
                self.walk(child)

    def heading(self, level: int, tag: Tag) -> None:
        text = " ".join(tag.get_text(" ").split())
        if not text:
            return
        self.flush()
        if self.first_heading is None:
            self.first_heading = text
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))


def parse_html(source: str | bytes, fallback_title: str) -> LoadedDocument:
    try:
        soup = BeautifulSoup(source, "lxml")
    except Exception as exc:  # lxml is lenient; this guards against the truly unparsable
        raise DocumentLoadError(f"cannot parse HTML: {exc}") from exc
    title_tag = soup.find("title")
    page_title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    h1s = soup.find_all("h1")
    only_h1 = " ".join(h1s[0].get_text(" ").split()) if len(h1s) == 1 else ""
    collector = _Collector(title=only_h1)
    root = soup.body or soup
    collector.walk(root)
    collector.flush()
    sections = require_text(collector.sections, "HTML file")
    title = collector.first_heading or page_title or fallback_title
    return LoadedDocument(title=title, sections=sections)


def load_html(path: Path, fallback_title: str) -> LoadedDocument:
    # bytes: BeautifulSoup honours the document's <meta charset> and falls back sensibly.
    return parse_html(path.read_bytes(), fallback_title)
