"""The documents routes in the service's app (``create_app``) with a real Redis, a real RQ
worker (run in burst mode in this process) and a real embedded Chroma."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from worker_testlib import BurstWorker

from app.api.main import create_app
from app.contracts import INGEST_QUEUE_NAME, QUEUE_NAME
from app.core.settings import get_settings
from app.documents.store import DocumentStore
from app.ingest import jobs
from app.ingest.jobs import REBUILD_LOCK_KEY
from app.ingest.queueing import ingest_queue

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUNBOOK = b"# Runbook\n\n## Restart Worker\nRun docker compose restart worker; watch the queue.\n"
SIZING = b"Chroma needs about two gigabytes of disk for each million chunks stored.\n"


@pytest.fixture
def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> Iterator[tuple[TestClient, Queue]]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DOCUMENTS_PATH", str(tmp_path / "documents"))
    monkeypatch.setenv("VECTOR_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.setenv("CHROMA_COLLECTION", "apitest")
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("MAX_UPLOAD_MB", "1")
    monkeypatch.delenv("CHROMA_URL", raising=False)
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()
    app = create_app(get_settings())
    with TestClient(app) as client:
        app.state.vector_store = jobs._vector_store()  # the API and the worker share a process
        yield client, ingest_queue(app.state.redis)  # uploads and rebuilds go to flow_ingest
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()


def run_worker(queue: Queue) -> None:
    """A real RQ worker that processes what is queued, then returns (jobs are JSON)."""
    BurstWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)


def test_admin_token_is_required(api: tuple[TestClient, Queue]) -> None:
    client, _ = api
    assert client.get("/api/documents").status_code == 401
    wrong = client.get("/api/documents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


def test_upload_queues_ingestion_and_reports_rejections(api: tuple[TestClient, Queue]) -> None:
    client, queue = api
    files = [
        ("files", ("runbook.md", RUNBOOK, "text/markdown")),
        ("files", ("../../etc/sizing\x1b[31m.txt", SIZING, "text/plain")),
        ("files", ("tool.exe", b"MZ\x90", "application/octet-stream")),
        ("files", ("empty.txt", b"", "text/plain")),
    ]
    response = client.post("/api/documents", files=files, headers=AUTH)
    assert response.status_code == 202, response.text
    body = response.json()
    assert [d["filename"] for d in body["documents"]] == ["runbook.md", "sizing[31m.txt"]
    assert all(d["status"] == "queued" and not d["duplicate"] for d in body["documents"])
    reasons = {r["filename"]: r["reason"] for r in body["rejected"]}
    assert "unsupported file type" in reasons["tool.exe"] and ".pdf" in reasons["tool.exe"]
    assert reasons["empty.txt"] == "empty file"
    assert queue.name == INGEST_QUEUE_NAME and queue.count == 2
    assert Queue(QUEUE_NAME, connection=queue.connection).count == 0  # chats never wait on it

    run_worker(queue)
    listed = client.get("/api/documents", headers=AUTH).json()["documents"]
    assert {d["filename"]: (d["status"], d["chunks"]) for d in listed} == {
        "runbook.md": ("ingested", 1),
        "sizing[31m.txt": ("ingested", 1),
    }
    assert all(d["ingested_at"] and d["error"] is None for d in listed)

    again = client.post("/api/documents", files=[files[0]], headers=AUTH).json()
    assert again["documents"][0]["duplicate"] is True
    assert again["documents"][0]["id"] == body["documents"][0]["id"]
    assert queue.count == 0  # already ingested: nothing to do


def test_no_allowed_extension_is_415_listing_the_allowed_ones(
    api: tuple[TestClient, Queue],
) -> None:
    client, queue = api
    files = [("files", ("a.exe", b"x", "x/y")), ("files", ("b.csv", b"1,2", "text/csv"))]
    response = client.post("/api/documents", files=files, headers=AUTH)
    assert response.status_code == 415
    detail = response.json()["detail"]
    for ext in (".txt", ".md", ".html", ".pdf", ".docx"):
        assert ext in detail
    assert len(response.json()["rejected"]) == 2 and queue.count == 0


def test_oversized_file_is_413(api: tuple[TestClient, Queue]) -> None:
    client, queue = api
    big = b"a" * (1024 * 1024 + 10)
    response = client.post("/api/documents", files=[("files", ("big.txt", big))], headers=AUTH)
    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]
    assert client.get("/api/documents", headers=AUTH).json()["documents"] == []
    assert queue.count == 0


def test_delete_removes_the_file_and_its_chunks(api: tuple[TestClient, Queue]) -> None:
    client, queue = api
    files = [("files", ("runbook.md", RUNBOOK)), ("files", ("sizing.txt", SIZING))]
    ids = [d["id"] for d in client.post("/api/documents", files=files, headers=AUTH).json()[
        "documents"]]  # fmt: skip
    run_worker(queue)
    response = client.delete(f"/api/documents/{ids[0]}", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"id": ids[0], "deleted": True, "chunks_removed": 1}
    assert client.delete(f"/api/documents/{ids[0]}", headers=AUTH).status_code == 404
    assert client.delete("/api/documents/..%2F..%2Fetc", headers=AUTH).status_code == 404
    hits = jobs._vector_store().query("restart worker", k=5)
    assert {h.metadata["document_id"] for h in hits} == {ids[1]}


def test_rebuild_runs_once_and_reports_progress(api: tuple[TestClient, Queue]) -> None:
    client, queue = api
    files = [
        ("files", ("runbook.md", RUNBOOK)),
        ("files", ("sizing.txt", SIZING)),
        ("files", ("broken.pdf", b"%PDF-1.7 not really")),
    ]
    client.post("/api/documents", files=files, headers=AUTH)
    run_worker(queue)
    before = jobs._vector_store().active_collection()

    first = client.post("/api/documents/ingest", headers=AUTH)
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    assert first.json()["status_url"] == f"/api/documents/ingest/{job_id}"
    second = client.post("/api/documents/ingest", headers=AUTH)
    assert second.json()["job_id"] == job_id  # one rebuild at a time
    queued = client.get(f"/api/documents/ingest/{job_id}", headers=AUTH).json()
    assert queued["status"] == "queued" and queued["done"] == 0

    run_worker(queue)
    progress = client.get(f"/api/documents/ingest/{job_id}", headers=AUTH).json()
    assert progress["status"] == "finished"
    assert progress["done"] == progress["total"] == 3
    assert progress["collection"] == jobs._vector_store().active_collection() != before
    assert progress["error"] is None
    assert [f["filename"] for f in progress["failed"]] == ["broken.pdf"]
    assert queue.connection.get(REBUILD_LOCK_KEY) is None

    third = client.post("/api/documents/ingest", headers=AUTH).json()["job_id"]
    assert third != job_id  # the finished rebuild released the lock


def test_unknown_rebuild_job_is_404(api: tuple[TestClient, Queue]) -> None:
    client, _ = api
    assert client.get("/api/documents/ingest/nope", headers=AUTH).status_code == 404


def test_uploads_get_429_when_the_ingestion_queue_is_full(api: tuple[TestClient, Queue]) -> None:
    client, queue = api
    client.app.state.settings.MAX_INGEST_QUEUE_DEPTH = 1  # this test's app only
    first = client.post("/api/documents", files=[("files", ("a.md", RUNBOOK))], headers=AUTH)
    assert first.status_code == 202 and queue.count == 1
    second = client.post("/api/documents", files=[("files", ("b.txt", SIZING))], headers=AUTH)
    assert second.status_code == 429
    assert "ingestion queue is full" in second.json()["detail"]
    assert "MAX_INGEST_QUEUE_DEPTH" in second.json()["detail"]
    assert second.headers["Retry-After"]
    listed = client.get("/api/documents", headers=AUTH).json()["documents"]
    assert [d["filename"] for d in listed] == ["a.md"]  # nothing of the refused upload stored


def test_a_full_disk_answers_507_and_leaves_nothing_half_stored(
    api: tuple[TestClient, Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, queue = api
    store = DocumentStore.from_settings(client.app.state.settings)
    real_write_meta = DocumentStore._write_meta
    calls = {"n": 0}

    def write_meta(self: DocumentStore, meta: object, *, create: bool) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:  # the second file's record: the volume is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_meta(self, meta, create=create)

    monkeypatch.setattr(DocumentStore, "_write_meta", write_meta)
    files = [("files", ("runbook.md", RUNBOOK)), ("files", ("sizing.txt", SIZING))]
    response = client.post("/api/documents", files=files, headers=AUTH)
    assert response.status_code == 507
    assert "no space left on device" in response.json()["detail"]
    assert store.list() == []  # the first file's record was rolled back too
    assert list(store.files_dir.iterdir()) == [] and list(store.tmp_dir.iterdir()) == []
    assert queue.count == 0


def test_reprocess_queues_one_document_with_the_ocr_flag(api: tuple[TestClient, Queue]) -> None:
    """Issue 21 item 10: the route `ops.documents reprocess --ocr` calls."""
    client, queue = api
    pdf = client.post(
        "/api/documents", files=[("files", ("scan.pdf", b"%PDF-1.4 fake", "application/pdf"))],
        headers=AUTH,
    ).json()["documents"][0]  # fmt: skip
    md = client.post(
        "/api/documents", files=[("files", ("runbook.md", RUNBOOK, "text/markdown"))], headers=AUTH
    ).json()["documents"][0]
    busy = client.post(f"/api/documents/{pdf['id']}/reprocess?ocr=true", headers=AUTH)
    assert busy.status_code == 409  # its first ingestion is still queued
    run_worker(queue)
    assert client.post("/api/documents/nope/reprocess", headers=AUTH).status_code == 404
    not_pdf = client.post(f"/api/documents/{md['id']}/reprocess?ocr=true", headers=AUTH)
    assert not_pdf.status_code == 409 and "PDF files only" in not_pdf.json()["detail"]
    again = client.post(f"/api/documents/{pdf['id']}/reprocess?ocr=true", headers=AUTH)
    assert again.status_code == 202 and again.json()["status"] == "queued"
    job = queue.fetch_job(f"ingest-{pdf['id']}")
    assert job is not None and list(job.args) == [pdf["id"], True]  # (id, force_ocr), JSON
