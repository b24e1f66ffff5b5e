"""Sources you can open: a cited passage with its neighbours (API key, like the chat), and the
original file of a document (admin token)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel

from app.api.dependencies import AdminDep, ApiKeyDep
from app.api.documents import StoreDep, VectorStoreDep
from app.contracts import DOCUMENTS_PATH
from app.ingest import displayed_text
from app.rag.vectorstore import RetrievedChunk

router = APIRouter(prefix=DOCUMENTS_PATH, tags=["documents"])

DocumentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
PassageNumber = Annotated[int, Path(ge=0, le=1_000_000)]

NOT_FOUND = {404: {"description": "no such document or passage (it may have been deleted)"}}
KEY_ERRORS = {
    401: {"description": "an API key is required"},
    403: {"description": "the API key is not valid"},
}
ADMIN_ERRORS = {
    401: {"description": "the admin token is required"},
    403: {"description": "the admin token is not valid, or admin routes are disabled"},
}


class PassageText(BaseModel):
    n: int
    heading: str | None = None
    page: int | None = None
    text: str


class Passage(BaseModel):
    document_id: str
    document: str
    passage: PassageText
    before: PassageText | None = None
    after: PassageText | None = None


def _text(chunk: RetrievedChunk, n: int) -> PassageText:
    meta = chunk.metadata
    heading = str(meta.get("heading") or "") or None
    title = str(meta.get("title") or "") or None
    return PassageText(
        n=n,
        heading=heading,
        page=int(meta.get("page", 0) or 0) or None,
        text=displayed_text(chunk.text, title, heading),
    )


@router.get(
    "/{document_id}/passages/{n}",
    response_model=Passage,
    dependencies=[ApiKeyDep],
    responses={**NOT_FOUND, **KEY_ERRORS},
)
async def passage(document_id: DocumentId, n: PassageNumber, vectors: VectorStoreDep) -> Passage:
    ids = [f"{document_id}:{i}" for i in (n - 1, n, n + 1) if i >= 0]
    found = await asyncio.to_thread(vectors.get, ids)
    here = found.get(f"{document_id}:{n}")
    if here is None:
        raise HTTPException(404, f"document {document_id[:64]!r} has no passage {n}")
    before, after = found.get(f"{document_id}:{n - 1}"), found.get(f"{document_id}:{n + 1}")
    return Passage(
        document_id=document_id,
        document=str(here.metadata.get("document", "unknown")),
        passage=_text(here, n),
        before=_text(before, n - 1) if before else None,
        after=_text(after, n + 1) if after else None,
    )


@router.get(
    "/{document_id}/file",
    response_class=FileResponse,
    dependencies=[AdminDep],
    responses={
        **NOT_FOUND,
        **ADMIN_ERRORS,
        200: {"description": "the original file", "content": {"application/octet-stream": {}}},
    },
)
def original_file(document_id: DocumentId, store: StoreDep) -> FileResponse:
    meta = store.get(document_id)
    path = store.file_path(meta) if meta is not None else None
    if meta is None or path is None or not path.is_file():
        raise HTTPException(404, f"no document with id {document_id[:64]!r}")
    return FileResponse(path, media_type=meta.content_type, filename=meta.filename)
