"""Shared output helpers: progress lines, failures, and the GitHub job summary.

``write_summary`` appends Markdown to the file named by ``GITHUB_STEP_SUMMARY`` when the
variable is set (in GitHub Actions) and does nothing otherwise, so every command can call it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


class OpsError(Exception):
    """A failure to report to the operator as one clear sentence (exit status 1)."""


def say(message: str) -> None:
    """Print one progress line immediately (workflow logs and terminals both see it)."""
    print(message, flush=True)


def fail(message: str, code: int = 1) -> int:
    """Print the failure sentence on stderr and return the exit status to use."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def md_escape(text: object) -> str:
    """Make a value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(md_escape(h) for h in headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(markdown: str, env: dict[str, str] | None = None) -> Path | None:
    """Append ``markdown`` to $GITHUB_STEP_SUMMARY; return the file written, or None."""
    target = (env if env is not None else os.environ).get(SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return path
