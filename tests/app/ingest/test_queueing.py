"""The ingestion queue: one job per document, retries, the failure callback on the last
attempt and the reconciler, with a real Redis, real RQ workers (in this process) and a real
embedded Chroma."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from worker_testlib import BurstWorker

from app.contracts import INGEST_QUEUE_NAME
from app.core.redis_clients import JOB_SERIALIZER
from app.core.settings import Settings, get_settings
from app.documents.store import DocumentMeta, DocumentStatus, DocumentStore
from app.ingest import jobs
from app.ingest.queueing import enqueue_ingest, ingest_job_id, ingest_queue, reconcile

DOC = b"# Redis\n\n## Persistence\nEnable AOF with appendfsync everysec.\n"


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> Iterator[tuple[DocumentStore, Queue, Settings]]:
    monkeypatch.setenv("DOCUMENTS_PATH", str(tmp_path / "documents"))
    monkeypatch.setenv("VECTOR_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.setenv("CHROMA_COLLECTION", "queuetest")
    monkeypatch.setenv("INGEST_RETRY_INTERVALS", "0")  # one retry, at once (no scheduler here)
    monkeypatch.delenv("CHROMA_URL", raising=False)
    get_settings.cache_clear()
    jobs._vector_store.cache_clear()
    settings = get_settings()
    connection = redis.Redis.from_url(redis_url)
    yield DocumentStore.from_settings(settings), ingest_queue(connection), settings
    connection.close()
    get_settings.cache_clear()
    getattr(jobs._vector_store, "cache_clear", lambda: None)()  # a test may have replaced it


def upload(store: DocumentStore, data: bytes = DOC) -> DocumentMeta:
    return store.save(io.BytesIO(data), "redis.md")[0]


def work(queue: Queue) -> None:
    BurstWorker([queue], connection=queue.connection, serializer=JOB_SERIALIZER).work(burst=True)


def test_one_job_per_document_on_the_ingest_queue(env) -> None:
    store, queue, settings = env
    meta = upload(store)
    assert queue.name == INGEST_QUEUE_NAME
    assert enqueue_ingest(queue, settings, meta.id) is True
    assert enqueue_ingest(queue, settings, meta.id) is False  # still waiting: not twice
    assert queue.job_ids == [ingest_job_id(meta.id)]
    work(queue)
    assert store.get(meta.id).status == DocumentStatus.ingested


class _DownStore:
    def active_collection(self) -> str:
        raise ConnectionError("chroma is restarting")


def test_the_last_failed_attempt_marks_the_document_failed(env, monkeypatch) -> None:
    store, queue, settings = env
    meta = upload(store)
    monkeypatch.setattr(jobs, "_vector_store", lambda: _DownStore())
    enqueue_ingest(queue, settings, meta.id)
    work(queue)  # attempt 1 fails, the retry is requeued and fails too
    failed = store.get(meta.id)
    assert failed.status == DocumentStatus.failed
    assert failed.error == (
        "ingestion failed after 2 attempt(s): ConnectionError: chroma is restarting"
    )
    job = Job.fetch(ingest_job_id(meta.id), connection=queue.connection, serializer=JOB_SERIALIZER)
    assert job.get_status() == "failed"


def test_the_reconciler_fails_a_document_whose_job_is_gone_and_reupload_recovers(env) -> None:
    store, queue, settings = env
    meta = upload(store)  # stored, but the job never made it to Redis
    assert reconcile(queue.connection, store) == []  # too recent: it may be enqueued right now
    assert reconcile(queue.connection, store, grace=0) == [meta.id]
    stuck = store.get(meta.id)
    assert stuck.status == DocumentStatus.failed and "job was lost" in stuck.error

    again, created = store.save(io.BytesIO(DOC), "redis.md")  # the user uploads it again
    assert not created and again.status == DocumentStatus.queued
    assert enqueue_ingest(queue, settings, again.id) is True
    assert reconcile(queue.connection, store, grace=0) == []  # its job waits: leave it
    work(queue)
    assert store.get(meta.id).status == DocumentStatus.ingested


def test_the_reconciler_fails_a_document_whose_job_failed_without_updating_it(env) -> None:
    store, queue, _settings = env
    meta = upload(store)
    # a job under the document's job id that fails without the failure callback
    queue.enqueue("builtins.int", "not a number", job_id=ingest_job_id(meta.id))
    work(queue)
    assert Job.fetch(
        ingest_job_id(meta.id), connection=queue.connection, serializer=JOB_SERIALIZER
    ).is_failed
    assert store.get(meta.id).status == DocumentStatus.queued  # stuck, until:
    assert reconcile(queue.connection, store, grace=0) == [meta.id]
    assert store.get(meta.id).error == (
        "ingestion failed: ValueError: invalid literal for int() with base 10: 'not a number'"
    )


def test_the_collector_reports_the_ingest_queue_next_to_the_chat_queue(env) -> None:
    from app.contracts import METRIC_RQ_JOBS, QUEUE_NAME
    from app.observability.metrics import FlowchatCollector

    store, queue, settings = env
    enqueue_ingest(queue, settings, upload(store).id)
    families = {f.name: f for f in FlowchatCollector(queue.connection, QUEUE_NAME, None).collect()}
    queued = {
        s.labels["queue"]: s.value
        for s in families[METRIC_RQ_JOBS].samples
        if s.labels["status"] == "queued"
    }
    assert queued == {QUEUE_NAME: 0, INGEST_QUEUE_NAME: 1}  # MAX_QUEUE_DEPTH's queue is empty
