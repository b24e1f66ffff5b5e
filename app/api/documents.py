"""Document routes (admin token): upload, list, delete, rebuild the vector store, its progress.

See docs/api.md, "Documents". Uploads are stored by ``app.documents.store`` and ingested by the
``app.ingest.jobs`` jobs on the ingestion queue (``flow_ingest``, never the chat queue), which
has its own depth limit (``MAX_INGEST_QUEUE_DEPTH``); deletes are synchronous.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.dependencies import AdminDep, RedisDep, SettingsDep
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.contracts import DOCUMENTS_PATH, INGEST_PATH
from app.core.job_errors import failure_reason
from app.core.redis_clients import JOB_SERIALIZER
from app.core.settings import Settings
from app.documents.store import (
    DocumentMeta,
    DocumentStatus,
    DocumentStore,
    StorageFull,
    UploadRejected,
)
from app.ingest.jobs import REBUILD_JOB
from app.ingest.queueing import enqueue_ingest, ingest_depth, ingest_queue, ingest_retry
from app.ingest.rebuild_lock import REBUILD_JOB_TIMEOUT, RebuildLock, rebuild_space_problem
from app.observability import tracing
from app.rag.vectorstore import VectorStore

router = APIRouter(
    prefix=DOCUMENTS_PATH,
    tags=["documents"],
    dependencies=[AdminDep],
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)

MAX_FILES_PER_REQUEST = 20
INGEST_RETRY_AFTER_SECONDS = 60
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and part headers
UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                }
            }
        },
    }
}


# --- models ---------------------------------------------------------------------------------
class DocumentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    status: DocumentStatus
    chunks: int | None
    error: str | None
    uploaded_at: datetime
    ingested_at: datetime | None

    @classmethod
    def of(cls, meta: DocumentMeta) -> DocumentOut:
        return cls.model_validate(meta.model_dump())


class UploadedDocument(DocumentOut):
    duplicate: bool = False  # the same content was uploaded before (same id, stored once)


class Rejected(BaseModel):
    filename: str
    reason: str


class UploadResult(BaseModel):
    documents: list[UploadedDocument]
    rejected: list[Rejected]


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class Deleted(BaseModel):
    id: str
    deleted: bool
    chunks_removed: int


class IngestAccepted(BaseModel):
    job_id: str
    status_url: str


class FailedDocument(BaseModel):
    id: str
    filename: str
    error: str


class IngestProgress(BaseModel):
    job_id: str
    status: str
    phase: str | None = None
    done: int = 0
    total: int = 0
    collection: str | None = None
    error: str | None = None
    failed: list[FailedDocument] = []


# --- dependencies ---------------------------------------------------------------------------
def get_document_store(settings: SettingsDep) -> DocumentStore:
    return DocumentStore.from_settings(settings)


def get_vector_store(request: Request, settings: SettingsDep) -> VectorStore:
    """One VectorStore per app (``app.state.vector_store``), opened on first use."""
    state = request.app.state
    store = getattr(state, "vector_store", None)
    if store is None:
        store = VectorStore.from_settings(settings)
        state.vector_store = store
    return store


def get_ingest_queue(request: Request) -> Queue:
    """The ingestion queue (``flow_ingest``) on the app's Redis connection."""
    return ingest_queue(request.app.state.redis)


StoreDep = Annotated[DocumentStore, Depends(get_document_store)]
IngestQueueDep = Annotated[Queue, Depends(get_ingest_queue)]
VectorStoreDep = Annotated[VectorStore, Depends(get_vector_store)]


# --- upload ---------------------------------------------------------------------------------
def _check_request_size(request: Request, settings: Settings) -> None:
    """Refuse an upload whose declared size cannot fit, before its body is read."""
    limit = settings.max_upload_bytes * MAX_FILES_PER_REQUEST + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the upload is larger than {MAX_FILES_PER_REQUEST} files of "
            f"{settings.MAX_UPLOAD_MB:g} MB (MAX_UPLOAD_MB)",
        )


def _refusal(rejected: list[Rejected], codes: list[int], store: DocumentStore) -> JSONResponse:
    """The response when no file was accepted: 415, 413 or 422 by what went wrong."""
    if all(code == 415 for code in codes):
        code = 415
        detail = f"no file has an allowed extension; allowed: {', '.join(store.allowed_extensions)}"
    elif 413 in codes:
        code = 413
        detail = f"no file accepted: files must be at most {store.max_bytes / 2**20:g} MB"
    else:
        code = 422
        detail = "no file accepted: " + "; ".join(f"{r.filename}: {r.reason}" for r in rejected)
    body = {"detail": detail, "rejected": [r.model_dump() for r in rejected]}
    return JSONResponse(body, status_code=code)


def _check_ingest_depth(queue: Queue, settings: Settings) -> None:
    """Refuse an upload while the ingestion queue is over its own limit (chats unaffected)."""
    try:
        depth = ingest_depth(queue)
    except redis.RedisError:
        raise HTTPException(
            503, "the job queue (Redis) is unreachable; nothing was stored"
        ) from None
    if depth >= settings.MAX_INGEST_QUEUE_DEPTH:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"the ingestion queue is full ({depth} of {settings.MAX_INGEST_QUEUE_DEPTH} "
            "documents waiting, MAX_INGEST_QUEUE_DEPTH); upload again once they are ingested",
            headers={"Retry-After": str(INGEST_RETRY_AFTER_SECONDS)},
        )


def _storage_full(store: DocumentStore, created: list[str]) -> HTTPException:
    """507 after a full disk: the files this request stored are removed again, so no document
    stays ``queued`` without a job and no half-written file is left."""
    for document_id in created:
        store.delete(document_id)
    return HTTPException(
        status.HTTP_507_INSUFFICIENT_STORAGE,
        "the documents volume is full (no space left on device); nothing from this upload "
        "was stored. Free space or grow the volume, then upload again",
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResult,
    openapi_extra=UPLOAD_SCHEMA,
    responses={413: {}, 415: {}, 422: {}, 429: {}, 503: {}, 507: {}},
)
async def upload(request: Request, settings: SettingsDep, store: StoreDep, queue: IngestQueueDep):
    _check_request_size(request, settings)
    _check_ingest_depth(queue, settings)
    async with request.form(max_files=MAX_FILES_PER_REQUEST, max_fields=10) as form:
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not files:
            raise HTTPException(422, "send one or more files in the multipart field 'files'")
        accepted: list[UploadedDocument] = []
        rejected: list[Rejected] = []
        codes: list[int] = []
        created_here: list[str] = []
        for file in files:
            try:
                meta, created = await run_in_threadpool(
                    store.save, file.file, file.filename, file.content_type
                )
            except UploadRejected as exc:
                rejected.append(Rejected(filename=exc.filename, reason=exc.reason))
                codes.append(exc.status_code)
                continue
            except StorageFull:
                raise _storage_full(store, created_here) from None
            if created:
                created_here.append(meta.id)
            accepted.append(UploadedDocument(**DocumentOut.of(meta).model_dump(),
                                             duplicate=not created))  # fmt: skip
    if not accepted:
        return _refusal(rejected, codes, store)
    try:
        for document in accepted:
            if document.status == DocumentStatus.queued:
                await run_in_threadpool(enqueue_ingest, queue, settings, document.id)
    except redis.RedisError:
        raise HTTPException(
            503,
            "the files are stored but the job queue (Redis) is unreachable; "
            "run POST /api/documents/ingest once it is back",
        ) from None
    return UploadResult(documents=accepted, rejected=rejected)


# --- list and delete ------------------------------------------------------------------------
@router.get("", response_model=DocumentList)
def list_documents(store: StoreDep) -> DocumentList:
    return DocumentList(documents=[DocumentOut.of(m) for m in store.list()])


@router.delete("/{document_id}", response_model=Deleted, responses={404: {}})
def delete_document(document_id: str, store: StoreDep, vectors: VectorStoreDep) -> Deleted:
    if store.get(document_id) is None:
        raise HTTPException(404, f"no document with id {document_id[:64]!r}")
    try:
        removed = vectors.delete_document(document_id)
    except Exception as exc:  # keep the document so the delete can be retried
        raise HTTPException(
            503, f"the vector store is unreachable; nothing was deleted ({type(exc).__name__})"
        ) from None
    store.delete(document_id)
    return Deleted(id=document_id, deleted=True, chunks_removed=removed)


@router.post(
    "/{document_id}/reprocess",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentOut,
    responses={404: {}, 409: {"description": "Being ingested now, or OCR on a non-PDF"}, 503: {}},
)
def reprocess(
    document_id: str,
    store: StoreDep,
    queue: IngestQueueDep,
    settings: SettingsDep,
    ocr: bool = False,
) -> DocumentOut:
    """Ingest one stored document again; ``ocr=true`` OCRs every PDF page that holds an image
    (a scan whose text layer is garbage). ``ops.documents reprocess --ocr ID`` calls it."""
    meta = store.get(document_id)
    if meta is None:
        raise HTTPException(404, f"no document with id {document_id[:64]!r}")
    if ocr and meta.extension != ".pdf":  # a schema-valid request the document's type forbids
        raise HTTPException(409, f"OCR applies to PDF files only, not {meta.extension}")
    if meta.status in (DocumentStatus.queued, DocumentStatus.ingesting):
        raise HTTPException(409, "the document is being ingested now; try again when it is done")
    queued = store.mark(document_id, DocumentStatus.queued)
    if queued is None:
        raise HTTPException(404, f"no document with id {document_id[:64]!r}")
    try:
        enqueue_ingest(queue, settings, document_id, force_ocr=ocr)
    except redis.RedisError:
        store.mark(document_id, meta.status, chunks=meta.chunks, error=meta.error)
        raise HTTPException(
            503, "the job queue (Redis) is unreachable; nothing was queued"
        ) from None
    return DocumentOut.of(queued)


# --- rebuild --------------------------------------------------------------------------------
def _accepted(job_id: str) -> JSONResponse:
    url = f"{INGEST_PATH}/{job_id}"
    body = IngestAccepted(job_id=job_id, status_url=url).model_dump()
    return JSONResponse(body, status_code=202, headers={"Location": url})


@router.post(
    "/ingest",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    responses={409: {}, 503: {}, 507: {}},
)
def rebuild(connection: RedisDep, queue: IngestQueueDep, settings: SettingsDep):
    """Re-ingest every document into a fresh collection (one rebuild at a time: a second
    request while one runs returns the running job; refused with 507 when the new collection
    would not fit next to the current one)."""
    lock = RebuildLock(connection)
    try:
        running = lock.running()
        if running is not None:
            return _accepted(running.id)
        problem = rebuild_space_problem(settings.VECTOR_STORE_PATH)
        if problem is not None:
            raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE, problem)
        job_id = f"rebuild-{uuid.uuid4().hex}"
        if not lock.acquire(job_id):
            running = lock.running()
            if running is not None:
                return _accepted(running.id)
            raise HTTPException(409, "another rebuild is starting; try again in a moment")
        retry = ingest_retry(settings)  # a restarted worker's rebuild resumes from its phase
        tracing.enqueue(
            queue,
            REBUILD_JOB,
            job_id=job_id,
            job_timeout=REBUILD_JOB_TIMEOUT,
            retry=retry if retry.max else None,
            description="rebuild the vector store from every stored document",
        )
    except redis.RedisError:
        raise HTTPException(
            503, "the job queue (Redis) is unreachable; nothing was queued"
        ) from None
    return _accepted(job_id)


def _error_of(job: Job, meta: dict[str, Any]) -> str | None:
    if meta.get("error"):
        return str(meta["error"])
    if job.get_status() != JobStatus.FAILED:
        return None
    return failure_reason(job, default="the rebuild job failed")


@router.get("/ingest/{job_id}", response_model=IngestProgress, responses={404: {}})
def rebuild_progress(job_id: str, connection: RedisDep) -> IngestProgress:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
    except (NoSuchJobError, UnicodeError, ValueError):  # a non-ASCII id is no job of ours
        job = None
    except redis.RedisError:
        raise HTTPException(503, "the job queue (Redis) is unreachable") from None
    if job is None or job.func_name != REBUILD_JOB:
        raise HTTPException(404, f"no rebuild job with id {job_id[:64]!r} (it may have expired)")
    meta = dict(job.get_meta(refresh=True))
    return IngestProgress(
        job_id=job.id,
        status=job.get_status().value,
        phase=meta.get("phase"),
        done=int(meta.get("done", 0)),
        total=int(meta.get("total", 0)),
        collection=meta.get("collection"),
        error=_error_of(job, meta),
        failed=[FailedDocument(**f) for f in meta.get("failed", [])],
    )
