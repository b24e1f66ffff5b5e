"""The ingestion jobs against a real embedded Chroma in a temporary folder."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.settings import get_settings
from app.documents.store import DocumentMeta, DocumentStatus, DocumentStore
from app.ingest import jobs
from app.rag.vectorstore import ChunkRecord, VectorStore

REDIS_DOC = b"# Redis Operations\n\n## Persistence\nEnable AOF with appendfsync everysec.\n"
CHROMA_DOC = b"# Chroma Sizing\n\n## Disk\nPlan two gigabytes of disk per million chunks.\n"
FLOW_DOC = b"Flow gateway returns 429 when the tenant quota is exhausted; honour Retry-After.\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DocumentStore]:
    monkeypatch.setenv("DOCUMENTS_PATH", str(tmp_path / "documents"))
    monkeypatch.setenv("VECTOR_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.setenv("CHROMA_COLLECTION", "jobtest")
    monkeypatch.delenv("CHROMA_URL", raising=False)
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()
    yield DocumentStore.from_settings(get_settings())
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()


def upload(store: DocumentStore, name: str, data: bytes) -> DocumentMeta:
    return store.save(io.BytesIO(data), name)[0]


def documents_in(vectors: VectorStore, collection: str | None = None) -> dict[str, int]:
    target = vectors._target(collection)
    found = target.get(include=["metadatas"])
    counts: dict[str, int] = {}
    for meta in found["metadatas"]:
        counts[str(meta["document"])] = counts.get(str(meta["document"]), 0) + 1
    return counts


def test_ingest_document_indexes_with_source_metadata(env: DocumentStore) -> None:
    meta = upload(env, "redis.md", REDIS_DOC)
    result = jobs.ingest_document(meta.id)
    assert result == {"id": meta.id, "status": "ingested", "chunks": 1}
    stored = env.get(meta.id)
    assert stored is not None and stored.status == DocumentStatus.ingested
    assert stored.chunks == 1 and stored.ingested_at is not None and stored.error is None

    hits = jobs._vector_store().query("how do I make redis durable with append only file", k=1)
    assert hits[0].metadata["document_id"] == meta.id
    assert hits[0].metadata["document"] == "redis.md"
    assert hits[0].metadata["heading"] == "Persistence"
    assert hits[0].metadata["title"] == "Redis Operations"


def test_reingesting_replaces_the_old_chunks(env: DocumentStore) -> None:
    meta = upload(env, "redis.md", REDIS_DOC)
    jobs.ingest_document(meta.id)
    jobs.ingest_document(meta.id)
    assert documents_in(jobs._vector_store()) == {"redis.md": 1}


def test_a_failing_document_does_not_touch_the_others(env: DocumentStore) -> None:
    good = upload(env, "chroma.md", CHROMA_DOC)
    jobs.ingest_document(good.id)
    broken = upload(env, "scan.pdf", b"%PDF-1.4\n garbage that is not a pdf body")
    result = jobs.ingest_document(broken.id)

    assert result["status"] == "failed"
    failed = env.get(broken.id)
    assert failed is not None and failed.status == DocumentStatus.failed
    assert failed.error and "PDF" in failed.error and failed.chunks is None
    still = env.get(good.id)
    assert still is not None and still.status == DocumentStatus.ingested and still.chunks == 1
    assert documents_in(jobs._vector_store()) == {"chroma.md": 1}


def test_unknown_document_is_a_no_op(env: DocumentStore) -> None:
    assert jobs.ingest_document("0" * 16)["status"] == "missing"


def test_rebuild_switches_atomically_and_drops_the_old_collection(
    env: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = upload(env, "redis.md", REDIS_DOC)
    jobs.ingest_document(first.id)
    vectors = jobs._vector_store()
    old = vectors.active_collection()
    upload(env, "chroma.md", CHROMA_DOC)  # uploaded, not yet ingested
    broken = upload(env, "broken.pdf", b"not a pdf at all")

    seen_during_rebuild: list[tuple[str, dict[str, int]]] = []
    real_add = VectorStore.add

    def observing_add(
        self: VectorStore, records: list[ChunkRecord], collection: str | None = None
    ) -> None:
        seen_during_rebuild.append((self.active_collection(), documents_in(self)))
        real_add(self, records, collection)

    monkeypatch.setattr(VectorStore, "add", observing_add)
    summary = jobs.rebuild_collection()

    # While the new collection filled, readers saw the old one, whole.
    assert seen_during_rebuild == [(old, {"redis.md": 1})] * 2
    new = vectors.active_collection()
    assert new == summary["collection"] != old
    assert old not in vectors.collections()
    assert documents_in(vectors) == {"redis.md": 1, "chroma.md": 1}
    assert summary["ingested"] == 2 and summary["failed"] == 1 and summary["chunks"] == 2
    statuses = {m.filename: (m.status, m.chunks) for m in env.list()}
    assert statuses == {
        "redis.md": (DocumentStatus.ingested, 1),
        "chroma.md": (DocumentStatus.ingested, 1),
        "broken.pdf": (DocumentStatus.failed, None),
    }
    failed = env.get(broken.id)
    assert failed is not None and failed.error and "PDF" in failed.error


def test_failing_rebuild_leaves_the_old_collection_serving(
    env: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_doc = upload(env, "redis.md", REDIS_DOC)
    jobs.ingest_document(redis_doc.id)
    upload(env, "flow.txt", FLOW_DOC)
    vectors = jobs._vector_store()
    old = vectors.active_collection()
    before = {m.id: m for m in env.list()}

    real_add = VectorStore.add
    calls = {"n": 0}

    def add_then_fail(
        self: VectorStore, records: list[ChunkRecord], collection: str | None = None
    ) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("chroma went away")
        real_add(self, records, collection)

    monkeypatch.setattr(VectorStore, "add", add_then_fail)
    with pytest.raises(ConnectionError):
        jobs.rebuild_collection()

    assert vectors.active_collection() == old
    assert vectors.collections() == [old]  # the half-built collection is gone
    assert documents_in(vectors) == {"redis.md": 1}
    hits = vectors.query("append only file durability", k=1)
    assert hits and hits[0].metadata["document"] == "redis.md"
    assert {m.id: m for m in env.list()} == before  # no status changed
