"""ops.documents sync: the knowledge base deployed from a folder, by content hash, against the
production-shaped local stack (admin token from its stack file, nothing seeded)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.contracts import DOCUMENTS_PATH
from ops import documents as d

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _remote(**kw: Any) -> dict[str, Any]:
    return {"id": kw["sha256"][:16], "status": "ingested", **kw}


def test_plan_by_content_hash(tmp_path: Path) -> None:
    (tmp_path / "same.md").write_text("# same\n")
    (tmp_path / "changed.md").write_text("# new text\n")
    (tmp_path / "new.md").write_text("# new\n")
    (tmp_path / "notes.yaml").write_text("not a document\n")
    local = {x.name: x for x in d.local_documents(tmp_path, [".md"])}
    assert set(local) == {"same.md", "changed.md", "new.md"}
    remote = [
        _remote(filename="same.md", sha256=local["same.md"].sha256),
        _remote(filename="changed.md", sha256="0" * 64),
        _remote(filename="gone.md", sha256="1" * 64),
    ]
    plan = d.make_plan(list(local.values()), remote)
    assert sorted(x.name for x in plan.upload) == ["changed.md", "new.md"]
    assert sorted(x["filename"] for x in plan.delete) == ["changed.md", "gone.md"]
    assert plan.lines() == [
        "~ changed.md (changed)",
        "+ new.md (new)",
        "- gone.md (removed from the folder)",
        "= 1 unchanged",
    ]
    failed = [_remote(filename="same.md", sha256=local["same.md"].sha256, status="failed")]
    assert [x.name for x in d.make_plan([local["same.md"]], failed).upload] == ["same.md"]


def test_against_prints_the_pr_plan_between_two_checkouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    base.mkdir()
    head.mkdir()
    (base / "a.md").write_text("# a\n")
    (base / "b.md").write_text("# b\n")
    (head / "a.md").write_text("# a, edited\n")
    (head / "c.md").write_text("# c\n")
    assert d.main(["sync", "--dry-run", "--against", str(base), str(head)]) == 0
    out = capsys.readouterr().out
    assert "~ a.md (changed)" in out and "+ c.md (new)" in out
    assert "- b.md (removed from the folder)" in out


def _served(stack: Any) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    docs = httpx.get(f"{stack.base_url}{DOCUMENTS_PATH}", headers=headers, timeout=30).json()
    return {x["filename"]: x["status"] for x in docs["documents"]}


def test_sync_uploads_changes_deletes_removed_and_is_idempotent(
    ops_stack: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(ops_stack.stack_file))
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    # the session's stack may serve what an earlier test deployed (the runbook's `sync ... docs`):
    # start from nothing served, the way an operator would
    assert d.main(["sync", "--stack", "local", str(empty)]) == 0
    assert _served(ops_stack.stack) == {}
    capsys.readouterr()
    folder = tmp_path / "kb"
    folder.mkdir()
    shutil.copy(DOCS / "runbook.md", folder / "runbook.md")
    (folder / "extra.md").write_text("# Extra\n\nThe blue valve is opened on Tuesdays.\n")

    assert d.main(["sync", "--stack", "local", "--dry-run", str(folder)]) == 0
    assert "+ runbook.md (new)" in capsys.readouterr().out
    assert "runbook.md" not in _served(ops_stack.stack)  # a dry run changes nothing

    assert d.main(["sync", "--stack", "local", str(folder)]) == 0
    assert {"runbook.md": "ingested", "extra.md": "ingested"}.items() <= _served(
        ops_stack.stack
    ).items()
    assert d.main(["sync", "--stack", "local", str(folder)]) == 0
    assert "Nothing to do" in capsys.readouterr().out

    (folder / "extra.md").write_text("# Extra\n\nThe blue valve is opened on Fridays.\n")
    (folder / "runbook.md").unlink()
    assert d.main(["sync", "--stack", "local", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "~ extra.md (changed)" in out and "- runbook.md (removed from the folder)" in out
    assert _served(ops_stack.stack) == {"extra.md": "ingested"}  # one version, old one gone

    assert d.main(["sync", "--stack", "local", str(empty)]) == 0  # back to nothing seeded
    assert _served(ops_stack.stack) == {}


def test_a_wrong_admin_token_is_one_sentence(
    ops_stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_TEST_TOKEN", "not-the-token")
    url = ops_stack.stack.base_url
    code = d.main(["sync", "--base-url", url, "--admin-token-env", "OPS_TEST_TOKEN", str(DOCS)])
    assert code == 1
    assert "refused the admin token (HTTP 403)" in capsys.readouterr().err


def _indexed_text(stack: Any, document_id: str) -> str:
    """The text the stack's vector store holds for a document (what retrieval can find)."""
    from app.core.settings import load_settings
    from app.rag.vectorstore import VectorStore

    settings = load_settings(CHROMA_URL=stack.chroma_url, CHROMA_TOKEN=stack.chroma_token)
    vectors = VectorStore.from_settings(settings)  # the stack's Chroma requires its token
    target = vectors._target(None)
    found = target.get(where={"document_id": document_id}, include=["documents"])
    return " ".join(found["documents"] or [])


@pytest.mark.skipif(not shutil.which("tesseract"), reason="OCR tools missing")
def test_reprocess_ocr_forces_ocr_on_one_document(
    ops_stack: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21 item 10: a scan with a garbage text layer is indexed as garbage until
    `python -m ops.documents reprocess --ocr ID` OCRs it."""
    from tests.app.ingest.test_pdf_loader import garbage_layer_pdf

    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(ops_stack.stack_file))
    folder = tmp_path / "kb"
    folder.mkdir()
    garbage_layer_pdf(folder / "scan.pdf", ["Rotate the credentials monthly"], "xq7 zzv")
    (folder / "scan.png").unlink()
    (folder / "note.md").write_text("# Note\n\nPlain text.\n")
    assert d.main(["sync", "--stack", "local", str(folder)]) == 0
    headers = {"Authorization": f"Bearer {ops_stack.stack.admin_token}"}
    listing = httpx.get(f"{ops_stack.stack.base_url}{DOCUMENTS_PATH}", headers=headers).json()
    ids = {x["filename"]: x["id"] for x in listing["documents"]}
    assert "xq7" in _indexed_text(ops_stack.stack, ids["scan.pdf"])

    capsys.readouterr()
    assert d.main(["reprocess", "--stack", "local", "--ocr", ids["scan.pdf"]]) == 0
    assert "scan.pdf re-ingested" in capsys.readouterr().out
    text = _indexed_text(ops_stack.stack, ids["scan.pdf"]).lower()
    assert "credentials" in text and "xq7" not in text

    assert d.main(["reprocess", "--stack", "local", "--ocr", ids["note.md"]]) == 1
    assert "OCR applies to PDF files only" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert d.main(["sync", "--stack", "local", str(empty)]) == 0
