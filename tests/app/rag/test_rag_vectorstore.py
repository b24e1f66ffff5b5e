from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.core.settings import load_settings
from app.rag.vectorstore import (
    POINTER_FRESH_SECONDS,
    POINTER_STALE_SECONDS,
    ChunkRecord,
    VectorStore,
    VectorStoreError,
)

TEXTS = {
    "restart": "Restart the worker with docker compose restart worker, then watch the queue drain.",
    "rotate": "Rotate the Flow credentials: write new secret versions and roll out the pods.",
    "redis": "Redis holds the flow_tasks queue; check connectivity with redis-cli ping.",
}


def _records(document_id: str, prefix: str = "") -> list[ChunkRecord]:
    return [
        ChunkRecord(
            id=f"{document_id}:{i}",
            text=prefix + text,
            metadata={"document_id": document_id, "document": f"{document_id}.md", "chunk": i},
        )
        for i, text in enumerate(TEXTS.values())
    ]


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    if request.param == "embedded":
        settings = load_settings(VECTOR_STORE_PATH=tmp_path / "chroma", CHROMA_URL=None)
    else:
        url = request.getfixturevalue("chroma_server")
        settings = load_settings(CHROMA_URL=url, CHROMA_COLLECTION=f"t{tmp_path.name[-12:]}")
    return VectorStore.from_settings(settings)


def test_query_ranks_the_relevant_chunk_first(store: VectorStore) -> None:
    store.add(_records("runbook"))
    hits = store.query("how do I restart the worker?", k=3)
    assert hits[0].id == "runbook:0"
    assert hits[0].metadata["document"] == "runbook.md"
    assert 0 < hits[-1].score < hits[0].score <= 1.0


def test_delete_document_removes_only_its_chunks(store: VectorStore) -> None:
    store.add(_records("a"))
    store.add(_records("b"))
    assert store.delete_document("a") == 3
    assert store.count() == 3
    assert {h.metadata["document_id"] for h in store.query("restart worker", 5)} == {"b"}


def test_switch_active_changes_what_queries_see(store: VectorStore) -> None:
    store.add(_records("old", prefix="old version: "))
    old = store.active_collection()
    fresh = store.new_collection_name()
    store.create_collection(fresh)
    store.add(_records("new", prefix="new version: "), collection=fresh)
    assert store.query("restart", 1)[0].metadata["document_id"] == "old"
    store.switch_active(fresh)
    assert store.active_collection() == fresh
    assert store.query("restart", 1)[0].metadata["document_id"] == "new"
    store.drop_collection(old)
    assert old not in store.collections()


def test_switching_to_a_missing_collection_is_refused(store: VectorStore) -> None:
    active = store.active_collection()
    with pytest.raises(VectorStoreError, match="does not exist"):
        store.switch_active("flowchat-does-not-exist")
    assert store.active_collection() == active


def test_a_second_client_sees_the_switch(chroma_server: str, tmp_path: Path) -> None:
    settings = load_settings(CHROMA_URL=chroma_server, CHROMA_COLLECTION="shared")
    writer, reader = VectorStore.from_settings(settings), VectorStore.from_settings(settings)
    fresh = writer.new_collection_name()
    writer.create_collection(fresh)
    writer.add(_records("doc"), collection=fresh)
    writer.switch_active(fresh)
    assert reader.active_collection() == fresh
    assert reader.query("queue drain", 1)[0].metadata["document_id"] == "doc"


def test_queries_follow_another_clients_switch_without_waiting_on_the_pointer(
    chroma_server: str, tmp_path: Path
) -> None:
    """A query reuses the pointer's last read; past POINTER_FRESH_SECONDS it still does, once,
    while a background read catches up; past POINTER_STALE_SECONDS it reads the pointer first."""
    settings = load_settings(CHROMA_URL=chroma_server, CHROMA_COLLECTION=f"p{tmp_path.name[-12:]}")
    writer, reader = VectorStore.from_settings(settings), VectorStore.from_settings(settings)
    writer.add(_records("old", prefix="old version: "))
    old = reader.active_collection()
    fresh = writer.new_collection_name()
    writer.create_collection(fresh)
    writer.add(_records("new", prefix="new version: "), collection=fresh)
    writer.switch_active(fresh)

    def top() -> str:
        return str(reader.query("restart", 1)[0].metadata["document_id"])

    assert top() == "old"  # a read this recent is used as is
    reader._active = (time.monotonic() - POINTER_FRESH_SECONDS - 0.5, old)
    assert top() == "old"  # served at once from the last read ...
    deadline = time.monotonic() + POINTER_STALE_SECONDS - POINTER_FRESH_SECONDS - 1
    while reader._active[1] != fresh and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader._active[1] == fresh  # ... which a background read brought up to date
    assert top() == "new"
    reader._active = (time.monotonic() - POINTER_STALE_SECONDS - 1, old)
    assert top() == "new"  # too old to serve: read before the query
    reader._active = (time.monotonic(), old)
    writer.drop_collection(old)
    assert top() == "new"  # the collection it names is gone: read again


def test_a_refresh_that_cannot_start_leaves_the_query_served_and_retries_later(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    settings = load_settings(CHROMA_URL=chroma_server, CHROMA_COLLECTION=f"q{tmp_path.name[-12:]}")
    store = VectorStore.from_settings(settings)
    store.add(_records("doc"))
    name = store.active_collection()
    store._active = (time.monotonic() - POINTER_FRESH_SECONDS - 0.5, name)

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with pytest.raises(RuntimeError):
        store.serving_collection()
    assert store._refreshing.acquire(blocking=False)  # not left held: a later query refreshes
    store._refreshing.release()
