"""RQ jobs (queue ``flow_ingest``, run by ``app.ingest.worker``) that put documents into the
vector store.

- ``ingest_document(document_id)``: one uploaded document into the serving collection.
- ``rebuild_collection()``: every stored document into a fresh collection, then an atomic switch;
  the old collection keeps serving until then and is dropped after.

Enqueue by dotted path (``INGEST_JOB`` / ``REBUILD_JOB``). Workers are ``SimpleWorker`` processes,
so the vector store (and its embedding model) is opened once per process (``_vector_store``).
A document that cannot be read is marked ``failed`` with the reason; it never disturbs the state
of the other documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from app.core.settings import Settings, get_settings
from app.documents.store import DocumentMeta, DocumentStatus, DocumentStore
from app.ingest import IngestError, chunk_records
from app.ingest.queueing import INGEST_JOB, INGEST_JOB_TIMEOUT  # noqa: F401 (re-exported)
from app.ingest.rebuild_lock import (  # noqa: F401 (re-exported)
    REBUILD_JOB_TIMEOUT,
    REBUILD_LOCK_KEY,
    RebuildLock,
)
from app.ingest.sandbox import load_in_sandbox
from app.rag.vectorstore import ChunkRecord, VectorStore

log = logging.getLogger("flowchat.ingest")

REBUILD_JOB = "app.ingest.jobs.rebuild_collection"
PROGRESS_EVERY = 1  # save job.meta after this many documents


@cache
def _vector_store() -> VectorStore:
    return VectorStore.from_settings(get_settings())


def build_records(
    meta: DocumentMeta, store: DocumentStore, settings: Settings, *, force_ocr: bool = False
) -> list[ChunkRecord]:
    """Load and chunk one stored document (raises IngestError with a user-facing reason)."""
    path = store.file_path(meta)
    if not path.exists():
        raise IngestError("the stored file is missing; upload the document again")
    # untrusted bytes: a limited child process
    loaded = load_in_sandbox(path, meta.filename, force_ocr=force_ocr)
    records = chunk_records(
        meta.id,
        meta.filename,
        loaded,
        chunk_size=settings.CHUNK_SIZE,
        overlap=settings.CHUNK_OVERLAP,
    )
    if not records:
        raise IngestError("the document produced no text chunks")
    return records


def ingest_document(document_id: str, force_ocr: bool = False) -> dict[str, Any]:
    """Replace one document's chunks in the serving collection; returns a short summary.
    ``force_ocr`` (``ops.documents reprocess --ocr``) OCRs every PDF page with an image.

    Unreadable documents end ``failed`` with the reason (the job itself succeeds: retrying
    would not help). Vector store errors mark the document failed and re-raise, so RQ's Retry
    can try again.
    """
    settings = get_settings()
    store = DocumentStore.from_settings(settings)
    meta = store.get(document_id)
    if meta is None:
        return {"id": document_id, "status": "missing"}
    store.mark(document_id, DocumentStatus.ingesting)
    try:
        records = build_records(meta, store, settings, force_ocr=force_ocr)
    except IngestError as exc:
        log.warning("document %s (%s) failed: %s", document_id, meta.filename, exc.reason)
        store.mark(document_id, DocumentStatus.failed, error=exc.reason)
        return {"id": document_id, "status": "failed", "error": exc.reason}

    vectors = _vector_store()
    try:
        target = vectors.active_collection()
        _replace(vectors, document_id, records, target)
        current = vectors.active_collection()
        if current != target:  # a rebuild switched collections meanwhile: write there too
            _replace(vectors, document_id, records, current)
    except Exception as exc:  # RQ retries after an interval; the last failure is recorded
        # by ingest_failed, so until then the document stays queued, with what went wrong
        note = f"vector store error ({type(exc).__name__}); retrying"
        store.mark(document_id, DocumentStatus.queued, error=note)
        raise
    if store.mark(document_id, DocumentStatus.ingested, chunks=len(records)) is None:
        vectors.delete_document(document_id)  # deleted while we worked: leave nothing behind
        return {"id": document_id, "status": "deleted"}
    return {"id": document_id, "status": "ingested", "chunks": len(records)}


def ingest_failed(
    job: Job, connection: object, exc_type: type, exc: BaseException, tb: object
) -> None:
    """RQ failure callback of ``ingest_document`` (also called by the abandoned-job cleanup
    when a worker died): on the last attempt the document ends ``failed`` with the reason;
    before that it goes back to ``queued`` for the retry."""
    document_id = str(job.args[0]) if job.args else ""
    store = DocumentStore.from_settings(get_settings())
    retries_left = job.retries_left or 0
    if isinstance(exc, AbandonedJobError) or exc_type is AbandonedJobError:
        cause = "the worker processing it stopped (killed, out of memory or restarted)"
    elif isinstance(exc, JobTimeoutException):
        cause = f"it took longer than {job.timeout} s"
    else:
        cause = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    try:
        if retries_left > 0:
            store.mark(document_id, DocumentStatus.queued, error=f"{cause}; retrying")
            return
        attempts = len(job.retry_intervals or []) + 1 if job.retry_intervals is not None else 1
        reason = f"ingestion failed after {attempts} attempt(s): {cause}"
        store.mark(document_id, DocumentStatus.failed, error=reason)
        log.warning("document %s failed: %s", document_id, reason)
    except KeyError:
        pass  # not a document id (deleted, or a malformed job): nothing to update


def _replace(
    vectors: VectorStore, document_id: str, records: list[ChunkRecord], collection: str
) -> None:
    vectors.delete_document(document_id, collection=collection)
    vectors.add(records, collection=collection)


@dataclass
class _Outcome:
    chunks: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


RESUMABLE_PHASES = ("ingesting", "switching")


class _Progress:
    """Rebuild progress in ``job.meta`` (read by ``GET /api/documents/ingest/{job_id}``), which
    is also what a retried rebuild resumes from: the new collection's name, the phase, and the
    documents already in it (``completed``) or failed."""

    def __init__(self, collection: str, resumed: dict[str, Any] | None = None) -> None:
        self.job = get_current_job()
        self.meta: dict[str, Any] = {
            "collection": collection,
            "phase": "starting",
            "done": 0,
            "total": 0,
            "failed": [],
            "completed": {},
        }
        if resumed:
            for key in ("previous", "done", "failed", "completed"):
                if key in resumed:
                    self.meta[key] = resumed[key]
            self.meta["resumed"] = int(resumed.get("resumed", 0)) + 1

    def outcome(self) -> _Outcome:
        return _Outcome(
            chunks={k: int(v) for k, v in self.meta["completed"].items()},
            failed={f["id"]: f["error"] for f in self.meta["failed"]},
        )

    def update(self, **changes: Any) -> None:
        self.meta.update(changes)
        if self.job is not None:
            self.job.meta.update(self.meta)
            self.job.save_meta()

    def release(self) -> None:
        """Let the next rebuild start (the API holds one rebuild at a time in Redis)."""
        if self.job is None:
            return
        try:
            RebuildLock(self.job.connection).release(self.job.id)
        except Exception:
            log.exception("could not release the rebuild lock")


def rebuild_collection() -> dict[str, Any]:
    """Re-ingest every stored document into a new collection, then switch to it atomically.

    Documents that cannot be read are marked failed and listed in ``job.meta["failed"]``; they
    do not abort the rebuild. Any other error re-raises with the old collection still serving
    and no document's status changed; the new collection is kept for the retry (RQ retries the
    job after an interval), which resumes from the phase in ``job.meta``, skipping the
    documents already in it, as does the retry of a rebuild whose worker was killed. The last
    attempt drops it.
    """
    settings = get_settings()
    store = DocumentStore.from_settings(settings)
    vectors = _vector_store()
    job = get_current_job()
    previous = dict(job.meta) if job is not None else {}
    old = vectors.active_collection()
    resumed = previous.get("collection") if previous.get("phase") in RESUMABLE_PHASES else None
    if resumed is not None and resumed not in vectors.collections():
        resumed = None
    progress = _Progress(resumed or vectors.new_collection_name(), previous if resumed else None)
    last_attempt = job is None or not job.retries_left
    try:
        if resumed is not None and resumed == old:  # killed after the switch: finish up
            summary = _after_switch(store, vectors, progress, progress.outcome())
        else:
            new = progress.meta["collection"]
            summary = _rebuild(store, vectors, settings, old, new, progress, last_attempt)
    except BaseException:
        if last_attempt:
            progress.release()
        raise
    progress.release()
    return summary


def _rebuild(
    store: DocumentStore,
    vectors: VectorStore,
    settings: Settings,
    old: str,
    new: str,
    progress: _Progress,
    last_attempt: bool = True,
) -> dict[str, Any]:
    outcome = progress.outcome()
    for leftover in vectors.collections():  # a rebuild whose worker was killed left these
        if leftover not in (old, new):
            vectors.drop_collection(leftover)
    try:
        vectors.create_collection(new)
        progress.update(phase="ingesting", previous=old)
        _fill(new, store, vectors, settings, outcome, progress)
        _fill(new, store, vectors, settings, outcome, progress)  # uploads that came meanwhile
        progress.update(phase="switching")
        vectors.switch_active(new)
    except BaseException as exc:
        progress.update(phase="failed" if last_attempt else "ingesting",
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        if last_attempt:
            try:
                vectors.drop_collection(new)
            except Exception:
                log.exception("could not drop the unfinished collection %s", new)
        raise
    try:  # an upload ingested into the old collection just before the switch
        _fill(new, store, vectors, settings, outcome, progress)
    except Exception:  # the new collection serves already; that document can be re-ingested
        log.exception("could not add late uploads to %s", new)
    return _after_switch(store, vectors, progress, outcome)


def _after_switch(
    store: DocumentStore, vectors: VectorStore, progress: _Progress, outcome: _Outcome
) -> dict[str, Any]:
    new, old = progress.meta["collection"], progress.meta.get("previous")
    _record_outcome(store, vectors, outcome)
    if old and old != new:
        try:
            vectors.drop_collection(old)
        except Exception:  # the new collection serves; a leftover old one only costs disk
            log.exception("could not drop the previous collection %s", old)
    summary = {
        "collection": new,
        "previous": old,
        "documents": len(outcome.chunks) + len(outcome.failed),
        "ingested": len(outcome.chunks),
        "failed": len(outcome.failed),
        "chunks": sum(outcome.chunks.values()),
    }
    progress.update(phase="finished", error=None, chunks=summary["chunks"])
    return summary


def _fill(
    collection: str,
    store: DocumentStore,
    vectors: VectorStore,
    settings: Settings,
    outcome: _Outcome,
    progress: _Progress,
) -> None:
    todo = [m for m in store.list() if m.id not in outcome.chunks and m.id not in outcome.failed]
    done = int(progress.meta["done"])
    progress.update(total=done + len(todo))
    for meta in todo:
        try:
            records = build_records(meta, store, settings)
        except IngestError as exc:
            outcome.failed[meta.id] = exc.reason
            progress.meta["failed"].append(
                {"id": meta.id, "filename": meta.filename, "error": exc.reason}
            )
        else:
            # a killed attempt may have written part of this document: replace, never add twice
            _replace(vectors, meta.id, records, collection)
            outcome.chunks[meta.id] = len(records)
            progress.meta["completed"][meta.id] = len(records)
        done += 1
        if done % PROGRESS_EVERY == 0 or done == progress.meta["total"]:
            progress.update(done=done)


def _record_outcome(store: DocumentStore, vectors: VectorStore, outcome: _Outcome) -> None:
    """After the switch: document statuses follow what the new collection holds."""
    for document_id, chunks in outcome.chunks.items():
        if store.mark(document_id, DocumentStatus.ingested, chunks=chunks) is None:
            vectors.delete_document(document_id)  # deleted during the rebuild
    for document_id, reason in outcome.failed.items():
        store.mark(document_id, DocumentStatus.failed, error=reason)
