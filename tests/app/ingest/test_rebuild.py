"""Rebuilds: the one lock (``RebuildLock``), the space check, and a retried rebuild resuming
from its phase, with a real Redis, RQ workers in this process and a real embedded Chroma."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job
from worker_testlib import BurstWorker

from app.core.redis_clients import JOB_SERIALIZER
from app.core.settings import get_settings
from app.documents.store import DocumentStatus, DocumentStore
from app.ingest import jobs, rebuild_lock
from app.ingest.queueing import ingest_queue
from app.ingest.rebuild_lock import RebuildLock, rebuild_space_problem

DOCS = {
    "redis.md": b"# Redis\n\n## Persistence\nEnable AOF with appendfsync everysec.\n",
    "chroma.md": b"# Chroma\n\n## Disk\nPlan two gigabytes of disk per million chunks.\n",
    "flow.txt": b"Flow returns 429 when the tenant quota is exhausted; honour Retry-After.\n",
}


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> Iterator[tuple[DocumentStore, Queue]]:
    monkeypatch.setenv("DOCUMENTS_PATH", str(tmp_path / "documents"))
    monkeypatch.setenv("VECTOR_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.setenv("CHROMA_COLLECTION", "rebuildtest")
    monkeypatch.delenv("CHROMA_URL", raising=False)
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()
    connection = redis.Redis.from_url(redis_url)
    yield DocumentStore.from_settings(get_settings()), ingest_queue(connection)
    connection.close()
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()


def test_the_lock_is_held_by_one_job_and_released_only_by_it(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = ingest_queue(connection)
    lock = RebuildLock(connection)
    waiting = queue.enqueue("builtins.len", "x", job_id="rebuild-a")
    assert lock.acquire(waiting.id) and not lock.acquire("rebuild-b")
    assert lock.running().id == "rebuild-a"
    assert lock.release("rebuild-b") is False and lock.holder() == "rebuild-a"
    assert lock.release("rebuild-a") is True and lock.holder() is None


def test_a_stale_holder_is_cleared(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = ingest_queue(connection)
    lock = RebuildLock(connection)
    done = queue.enqueue("builtins.len", "x", job_id="rebuild-done")
    BurstWorker([queue], connection=connection, serializer=JOB_SERIALIZER).work(burst=True)
    assert Job.fetch(done.id, connection=connection, serializer=JOB_SERIALIZER).is_finished
    assert lock.acquire(done.id)
    assert lock.running() is None and lock.holder() is None  # finished: no longer holds it
    assert lock.acquire("gone-job") and lock.running() is None  # vanished job: the same


def test_a_rebuild_that_would_not_fit_is_refused(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * 10_000_000)
    assert rebuild_space_problem(tmp_path) is None  # this machine has room for 12 MB
    monkeypatch.setattr(
        rebuild_lock.shutil, "disk_usage", lambda _path: SimpleNamespace(free=5_000_000)
    )
    problem = rebuild_space_problem(tmp_path)
    assert problem is not None and "needs about 11 MB free" in problem and "5 MB" in problem
    assert rebuild_space_problem(tmp_path / "not-here") is None  # the volume is elsewhere


def test_a_retried_rebuild_resumes_from_its_phase(env, monkeypatch) -> None:
    store, queue = env
    ids = {name: store.save(io.BytesIO(data), name)[0].id for name, data in DOCS.items()}
    vectors = jobs._vector_store()
    old = vectors.active_collection()
    # what a rebuild killed half-way leaves: its collection holding one document, its meta
    half = vectors.new_collection_name()
    vectors.create_collection(half)
    first = store.get(ids["redis.md"])
    vectors.add(jobs.build_records(first, store, get_settings()), collection=half)
    meta = {
        "collection": half,
        "phase": "ingesting",
        "previous": old,
        "done": 1,
        "total": 3,
        "failed": [],
        "completed": {ids["redis.md"]: 1},
    }
    built: list[str] = []
    real_build = jobs.build_records
    monkeypatch.setattr(
        jobs, "build_records", lambda m, *a: built.append(m.filename) or real_build(m, *a)
    )
    queue.enqueue(jobs.REBUILD_JOB, job_id="rebuild-resume", meta=meta, retry=Retry(max=1))
    assert RebuildLock(queue.connection).acquire("rebuild-resume")
    BurstWorker([queue], connection=queue.connection, serializer=JOB_SERIALIZER).work(burst=True)

    job = Job.fetch("rebuild-resume", connection=queue.connection, serializer=JOB_SERIALIZER)
    assert job.is_finished, job.latest_result()
    assert sorted(built) == ["chroma.md", "flow.txt"]  # the completed one was not redone
    assert vectors.active_collection() == half and old not in vectors.collections()
    assert job.return_value()["ingested"] == 3 and job.meta["resumed"] == 1
    assert {m.status for m in store.list()} == {DocumentStatus.ingested}
    assert RebuildLock(queue.connection).holder() is None


def test_the_rebuild_route_refuses_with_507_when_the_volume_is_too_small(
    tmp_path: Path, monkeypatch, redis_url: str
) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DOCUMENTS_PATH", str(tmp_path / "documents"))
    monkeypatch.setenv("VECTOR_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.setenv("ADMIN_TOKEN", "t")
    monkeypatch.delenv("CHROMA_URL", raising=False)
    (tmp_path / "chroma").mkdir()
    (tmp_path / "chroma" / "data.bin").write_bytes(b"x" * 2_000_000)
    monkeypatch.setattr(rebuild_lock.shutil, "disk_usage", lambda _p: SimpleNamespace(free=1))
    get_settings.cache_clear()
    try:
        with TestClient(create_app(get_settings())) as client:
            response = client.post("/api/documents/ingest", headers={"Authorization": "Bearer t"})
            assert response.status_code == 507
            assert "rebuild needs about 2 MB free" in response.json()["detail"]
            assert len(ingest_queue(redis.Redis.from_url(redis_url))) == 0
            assert RebuildLock(redis.Redis.from_url(redis_url)).holder() is None
    finally:
        get_settings.cache_clear()
