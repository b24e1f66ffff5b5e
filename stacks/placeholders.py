"""Placeholder values that must never reach a deployment, defined once.

Documentation IDs look real enough to pass validation and fail only at the cloud: a GUID of one
repeated digit (tenant `0000…`, principal `2222…`, client `3333…`), AWS's documentation account
`123456789012`, the `EXAMPLE` marker of AWS samples and the documentation domains. `find` walks
a parsed YAML document and names each hit by its key path; `ops.preflight` reports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PLACEHOLDER_PATTERNS: dict[str, re.Pattern[str]] = {
    "an ID of one repeated digit": re.compile(
        r"(?<![0-9a-f])([0-9])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}(?![0-9a-f])|/([0-9])\2{3}/", re.I
    ),
    "AWS's documentation account 123456789012": re.compile(r"(?<!\d)123456789012(?!\d)"),
    "the EXAMPLE marker": re.compile(r"EXAMPLE"),
    "a documentation domain": re.compile(r"(?<![a-z0-9-])example\.(com|org|net)\b", re.I),
}


def placeholder_kind(value: str) -> str | None:
    """What kind of placeholder `value` holds, or None."""
    for kind, pattern in PLACEHOLDER_PATTERNS.items():
        if pattern.search(value):
            return kind
    return None


def find(document: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(key path, kind) for every string in `document` that holds a placeholder."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from find(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from find(value, f"{path}[{index}]")
    elif isinstance(document, str):
        kind = placeholder_kind(document)
        if kind:
            yield path, kind
