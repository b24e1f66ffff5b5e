"""Prompt assembly: the system instructions (``prompts/system.txt``) and a user message that
lists the retrieved passages as numbered sources, then the question.

Document text is untrusted (anyone who can upload can write it), so every source sits in a
delimited block it cannot close or imitate: ``<``, ``>`` and ``&`` in document text, labels and
the question are escaped (``&lt;`` ...), so no text can contain a delimiter, a fake
``<source>`` or a fake ``<question>``. The system prompt says source text is data, never
instructions. The format is a contract with the Flow emulator (``app.flow.emulator``), which
answers extractively from these sources:

    <sources>
    <source n="1" label="runbook.md &gt; Restart Worker (page 3)">
    passage
    </source>
    </sources>

    <question>
    the question
    </question>

Earlier turns of the conversation are untrusted too (a caller of ``/v1`` writes them all): they
come first, as escaped ``<turn role="user|assistant">`` blocks inside one ``<history>`` block of
the same user message, never as messages of their own.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from app.contracts import REFUSAL_ANSWER
from app.ingest import displayed_text
from app.rag.vectorstore import RetrievedChunk

PROMPTS_DIR = Path(__file__).parent / "prompts"


class Source(BaseModel):
    """A numbered source as shown to the model and returned to the client."""

    n: int
    document_id: str
    document: str
    title: str | None = None
    heading: str | None = None
    page: int | None = None
    chunk: int | None = None  # the passage's number in its document (GET .../passages/{n})
    score: float
    text: str

    @property
    def label(self) -> str:
        parts = [self.document]
        if self.heading:
            parts.append(self.heading)
        label = " > ".join(parts)
        return f"{label} (page {self.page})" if self.page else label


@cache
def system_prompt() -> str:
    text = (PROMPTS_DIR / "system.txt").read_text(encoding="utf-8").strip()
    return text.replace("{refusal}", REFUSAL_ANSWER)


def to_sources(chunks: list[RetrievedChunk]) -> list[Source]:
    sources = []
    for n, chunk in enumerate(chunks, start=1):
        meta = chunk.metadata
        page = int(meta.get("page", 0) or 0)
        title = str(meta.get("title") or "") or None
        heading = str(meta.get("heading") or "") or None
        sources.append(
            Source(
                n=n,
                document_id=str(meta.get("document_id", "")),
                document=str(meta.get("document", "unknown")),
                title=title,
                heading=heading,
                page=page or None,
                chunk=int(meta["chunk"]) if "chunk" in meta else None,
                score=round(chunk.score, 4),
                text=displayed_text(chunk.text, title, heading),
            )
        )
    return sources


def escape(text: str) -> str:
    """Untrusted text as block content: it can no longer open or close a delimiter."""
    return html.escape(text, quote=True)


def source_block(source: Source) -> str:
    return (
        f'<source n="{source.n}" label="{escape(source.label)}">\n'
        f"{escape(source.text.strip())}\n</source>"
    )


def build_messages(
    question: str,
    sources: list[Source],
    history: list[dict[str, str]] | None = None,
    **_extensions: object,
) -> list[dict[str, str]]:
    """System prompt, then one user message: the conversation's earlier messages (``history``,
    already bounded by the caller: user and assistant turns), the sources and the question, each
    in escaped, delimited blocks (other keyword arguments are reserved for additions)."""
    blocks = "\n".join(source_block(s) for s in sources) or "(no sources were found)"
    user = f"<sources>\n{blocks}\n</sources>\n\n<question>\n{escape(question.strip())}\n</question>"
    turns = [turn_block(t["role"], t["content"]) for t in history or [] if is_turn(t)]
    if turns:
        user = "<history>\n" + "\n".join(turns) + "\n</history>\n\n" + user
    return [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": user},
    ]


def is_turn(turn: dict[str, str]) -> bool:
    return turn.get("role") in ("user", "assistant")


def turn_block(role: str, content: str) -> str:
    """An earlier message as data: escaped, so it can open or close no delimiter."""
    return f'<turn role="{role}">\n{escape(content.strip())}\n</turn>'
