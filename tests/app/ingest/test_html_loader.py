from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest.loaders.html import load_html
from app.ingest.models import DocumentLoadError

PAGE = """<!doctype html>
<html><head><title>Chroma sizing guide</title>
<style>body { color: red }</style><script>var secret = "do-not-index";</script></head>
<body>
<nav><a href="/">Home</a></nav>
<h1>Chroma Sizing</h1>
<p>Plan <b>2 GB</b> of disk per million chunks.</p>
<h2>Memory</h2>
<p>HNSW keeps the index in RAM.</p><!-- a comment to drop -->
<ul><li>one</li><li>two</li></ul>
<h3>Tuning</h3>
<table><tr><th>Setting</th><th>Value</th></tr><tr><td>ef</td><td>100</td></tr></table>
<noscript>enable javascript</noscript>
</body></html>
"""


def test_text_only_split_by_headings(tmp_path: Path) -> None:
    path = tmp_path / "sizing.html"
    path.write_text(PAGE)
    loaded = load_html(path, "sizing")
    assert loaded.title == "Chroma Sizing"
    by_heading = {s.heading: s.text for s in loaded.sections}
    assert list(by_heading) == [None, "Memory", "Memory > Tuning"]
    assert by_heading[None] == "Plan 2 GB of disk per million chunks."
    assert "HNSW keeps the index in RAM." in by_heading["Memory"]
    assert "one\ntwo" in by_heading["Memory"]
    assert "Setting | Value" in by_heading["Memory > Tuning"]
    everything = " ".join(s.text for s in loaded.sections)
    for dropped in ("do-not-index", "color: red", "<", "a comment", "javascript", "Home"):
        assert dropped not in everything


def test_page_without_text_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    path.write_text("<html><body><script>x()</script></body></html>")
    with pytest.raises(DocumentLoadError):
        load_html(path, "empty")
