"""The ingestion queue (``flow_ingest``): how uploads and rebuilds are enqueued, and the
reconciler that keeps a document from staying ``queued``/``ingesting`` past its job's life.

Ingestion never shares the chat queue or its workers (``app.ingest.worker`` listens here only),
so a 20-file upload or a rebuild cannot delay chats, fire the chat backlog alert or make chat
submissions hit ``MAX_QUEUE_DEPTH``.

Each document has at most one ingest job, with a deterministic id (``ingest-<document id>``):
the reconciler can ask RQ about it, and an upload of a document whose job is still waiting does
not enqueue a second one.
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app.contracts import INGEST_QUEUE_NAME
from app.core.job_errors import failure_reason
from app.core.redis_clients import JOB_SERIALIZER, job_queue
from app.core.settings import Settings
from app.documents.store import DocumentStatus, DocumentStore
from app.observability import tracing

log = logging.getLogger("flowchat.ingest")

INGEST_JOB = "app.ingest.jobs.ingest_document"
INGEST_FAILED_CALLBACK = "app.ingest.jobs.ingest_failed"
INGEST_JOB_TIMEOUT = 1800  # OCR is ~1 s a page: a long scanned PDF takes minutes
ACTIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
RECONCILE_GRACE_SECONDS = 60  # a document's record changed this recently is left alone
PENDING = (DocumentStatus.queued, DocumentStatus.ingesting)


def ingest_queue(connection: redis.Redis) -> Queue:
    return job_queue(INGEST_QUEUE_NAME, connection)


def ingest_job_id(document_id: str) -> str:
    return f"ingest-{document_id}"


def ingest_retry(settings: Settings) -> Retry:
    """Retries with growing intervals: a Chroma restart outlasts attempts seconds apart."""
    intervals = list(settings.INGEST_RETRY_INTERVALS)
    return Retry(max=len(intervals), interval=intervals) if intervals else Retry(max=0)


def _fetch(connection: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
    except NoSuchJobError:
        return None


def enqueue_ingest(
    queue: Queue, settings: Settings, document_id: str, *, force_ocr: bool = False
) -> bool:
    """Enqueue the ingestion of one document unless its job is already waiting or running.
    Returns True when a job was enqueued. ``force_ocr`` is a flag of the job (kept by retries)."""
    job_id = ingest_job_id(document_id)
    previous = _fetch(queue.connection, job_id)
    if previous is not None:
        if previous.get_status() in ACTIVE_JOB_STATES:
            return False
        previous.delete()  # a finished or failed run: its registries must not list the new one
    retry = ingest_retry(settings)
    tracing.enqueue(  # the upload's trace and request id reach the ingestion job
        queue,
        INGEST_JOB,
        document_id,
        *((True,) if force_ocr else ()),  # ingest_document's force_ocr
        job_id=job_id,
        job_timeout=INGEST_JOB_TIMEOUT,
        retry=retry if retry.max else None,
        on_failure=Callback(INGEST_FAILED_CALLBACK),
        description=f"ingest document {document_id}",
    )
    return True


def ingest_depth(queue: Queue) -> int:
    return queue.count


def reconcile(
    connection: redis.Redis, store: DocumentStore, *, grace: float = RECONCILE_GRACE_SECONDS
) -> list[str]:
    """Fail the documents still ``queued``/``ingesting`` whose ingest job is gone or over.

    Returns the ids it failed. A document whose record changed in the last ``grace`` seconds
    is skipped (its job may be being enqueued right now).
    """
    failed: list[str] = []
    now = time.time()
    for meta in store.list():
        if meta.status not in PENDING:
            continue
        try:
            changed = store.meta_mtime(meta.id)
        except FileNotFoundError:
            continue
        if now - changed < grace:
            continue
        job = _fetch(connection, ingest_job_id(meta.id))
        if job is None:
            reason = (
                "its ingestion job was lost (the queue was unreachable or emptied); "
                "upload the document again"
            )
        else:
            status = job.get_status()
            if status in ACTIVE_JOB_STATES:
                continue
            if status == JobStatus.FINISHED:
                reason = "its ingestion job ended without recording a result; upload it again"
            else:
                default = f"the ingestion job is {getattr(status, 'value', status)}"
                reason = f"ingestion failed: {failure_reason(job, default=default)}"
        if store.mark(meta.id, DocumentStatus.failed, error=reason) is not None:
            log.warning("document %s was stuck %s: %s", meta.id, meta.status, reason)
            failed.append(meta.id)
    return failed
