from __future__ import annotations

from pathlib import Path

from app.ingest.loaders.markdown import load_markdown, parse_markdown

RUNBOOK = """\
# Operations Runbook

Intro paragraph before any section.

## Runbooks

### Restart Worker
1. `docker compose restart worker`
2. Watch the queue drain.

### Rotate **Flow** Credentials
Update the secret manager.

```bash
# not a heading: a shell comment inside a fence
echo done
```

## [Escalation](https://example.invalid/esc)
Page the backend engineer.
"""


def test_sections_follow_heading_paths_without_the_title(tmp_path: Path) -> None:
    path = tmp_path / "runbook.md"
    path.write_text(RUNBOOK)
    loaded = load_markdown(path, "runbook")
    assert loaded.title == "Operations Runbook"
    headings = [s.heading for s in loaded.sections]
    assert headings == [
        None,
        "Runbooks > Restart Worker",
        "Runbooks > Rotate Flow Credentials",
        "Escalation",
    ]
    assert loaded.sections[0].text == "Intro paragraph before any section."
    assert "docker compose restart worker" in loaded.sections[1].text
    rotate = loaded.sections[2].text
    assert "# not a heading" in rotate and "echo done" in rotate
    assert loaded.sections[3].text == "Page the backend engineer."


def test_setext_headings_and_several_top_levels() -> None:
    source = "Alpha\n=====\n\nalpha body\n\nBeta\n====\n\nSub\n---\n\nsub body\n"
    loaded = parse_markdown(source, "fallback")
    assert loaded.title == "Alpha"
    assert [(s.heading, s.text) for s in loaded.sections] == [
        ("Alpha", "alpha body"),
        ("Beta > Sub", "sub body"),
    ]


def test_no_heading_falls_back_to_the_file_stem() -> None:
    loaded = parse_markdown("just text\n\n---\n\nmore text", "stem-name")
    assert loaded.title == "stem-name"
    assert len(loaded.sections) == 1 and loaded.sections[0].heading is None
