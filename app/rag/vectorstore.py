"""The Chroma vector store: embedded at ``VECTOR_STORE_PATH``, or a server at ``CHROMA_URL``.

Chunks live in a *generation* collection (``flowchat-<timestamp>``); a one-record pointer
collection names the active generation. A rebuild fills a new generation while the old one keeps
serving, then moves the pointer (a single upsert, so readers see either the old or the new
collection, never a half-built one) and drops the old generation.

Two processes must never open one embedded path (FINDINGS): under ``make run`` and in
Kubernetes every process talks to one Chroma server (chromadb's, requiring ``CHROMA_TOKEN``);
the embedded mode serves tools that run alone (the evaluation command, benchmarks,
single-process tests).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlparse

from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field

from app.core.settings import Settings
from app.observability.tracing import traced
from app.rag.embeddings import DIMENSIONS, Embedder, get_embedder

log = logging.getLogger(__name__)
MetadataValue = str | int | float | bool
POINTER_ID = "active"
# Queries reuse the pointer's last read: as is for POINTER_FRESH_SECONDS, then once more while a
# background thread reads it again (no query waits on that round trip), up to
# POINTER_STALE_SECONDS, after which the query reads it itself.
POINTER_FRESH_SECONDS = 1.0
POINTER_STALE_SECONDS = 10.0


class ChunkRecord(BaseModel):
    id: str
    text: str
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class RetrievedChunk(BaseModel):
    id: str
    text: str
    metadata: dict[str, MetadataValue]
    score: float  # cosine similarity in [0, 1] for normalised vectors; higher is closer


class VectorStoreError(RuntimeError):
    pass


def set_http_timeout(client: Any, seconds: float) -> None:
    """Chroma's HTTP client builds its httpx session with ``timeout=None`` and offers no
    setting for it: a hung Chroma would block a worker (or an API thread) forever. Bound it."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise VectorStoreError("cannot set the Chroma client's timeout: unknown client layout")
    session.timeout = httpx.Timeout(seconds, connect=min(seconds, 2.0))


CHROMA_CLIENT_AUTH_PROVIDER = "chromadb.auth.token_authn.TokenAuthClientProvider"


def make_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.CHROMA_URL:
        url = urlparse(settings.CHROMA_URL)
        token = settings.CHROMA_TOKEN.get_secret_value()
        if token:  # sent as `Authorization: Bearer` on every request
            chroma_settings = ChromaSettings(
                anonymized_telemetry=False,
                allow_reset=False,
                chroma_client_auth_provider=CHROMA_CLIENT_AUTH_PROVIDER,
                chroma_client_auth_credentials=token,
            )
        client = chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
        set_http_timeout(client, settings.CHROMA_TIMEOUT_SECONDS)
        return client
    settings.VECTOR_STORE_PATH.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.VECTOR_STORE_PATH), settings=chroma_settings)


class VectorStore:
    def __init__(self, client: Any, *, prefix: str = "flowchat", embedder: Embedder | None = None):
        self.client = client
        self.prefix = prefix
        self._embedder = embedder
        self._pointer_name = f"{prefix}-pointer"
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}  # collection objects by name (saves a round trip)
        self._active: tuple[float, str] | None = None  # (monotonic time read, name)
        self._refreshing = threading.Lock()  # one background pointer read at a time

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorStore:
        return cls(make_client(settings), prefix=settings.CHROMA_COLLECTION)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    # --- collections ------------------------------------------------------------------------
    def _collection(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = self._open(name)
        return handle

    def _open(self, name: str) -> Any:
        from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

        return self.client.get_or_create_collection(
            name=name,
            metadata={"hnsw:space": "cosine"},
            # the stock function, so that any Chroma client can open the collection
            embedding_function=DefaultEmbeddingFunction(),
        )

    def _pointer(self) -> Any:
        return self._collection(self._pointer_name)

    def new_collection_name(self) -> str:
        return f"{self.prefix}-{time.strftime('%Y%m%d%H%M%S')}-{time.time_ns() % 1_000_000:06d}"

    def create_collection(self, name: str) -> None:
        self._collection(name)

    def active_collection(self, *, max_age: float = 0.0) -> str:
        """Name of the serving collection; created (empty) on first use. ``max_age`` lets a
        caller reuse a pointer read that recent (queries: :meth:`serving_collection`)."""
        cached = self._active
        if cached is not None and time.monotonic() - cached[0] <= max_age:
            return cached[1]
        got = self._pointer().get(ids=[POINTER_ID], include=["metadatas"])
        if got["ids"]:
            name = str(got["metadatas"][0]["collection"])
            self._active = (time.monotonic(), name)
            return name
        with self._lock:
            name = self.new_collection_name()
            self.create_collection(name)
            self.switch_active(name)
            return name

    def serving_collection(self) -> str:
        """The active collection's name for a query, without waiting on Chroma when a read of
        the pointer is at most POINTER_STALE_SECONDS old (see the constants). A rebuild that
        switched meanwhile is seen within a second of the next query; a query that meets a
        dropped collection reads the pointer again (:meth:`query`)."""
        cached = self._active
        if cached is None:
            return self.active_collection()
        age = time.monotonic() - cached[0]
        if age <= POINTER_FRESH_SECONDS:
            return cached[1]
        if age > POINTER_STALE_SECONDS:
            return self.active_collection()
        if self._refreshing.acquire(blocking=False):
            try:
                threading.Thread(
                    target=self._refresh_pointer, name="pointer-refresh", daemon=True
                ).start()
            except BaseException:  # no thread (or the job's timeout landed): refresh later
                self._refreshing.release()
                raise
        return cached[1]

    def _refresh_pointer(self) -> None:
        try:
            self.active_collection()
        except Exception as exc:  # Chroma unreachable: a query past the stale limit reads it
            log.warning("could not refresh the active collection: %s", type(exc).__name__)
        finally:
            self._refreshing.release()

    def switch_active(self, name: str) -> None:
        existing = {
            c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()
        }
        if name not in existing:
            raise VectorStoreError(f"cannot switch to collection {name!r}: it does not exist")
        unit = [1.0] + [0.0] * (DIMENSIONS - 1)
        self._pointer().upsert(
            ids=[POINTER_ID], embeddings=[unit], metadatas=[{"collection": name}], documents=[name]
        )
        self._active = (time.monotonic(), name)

    def drop_collection(self, name: str) -> None:
        if name == self._pointer_name:
            raise VectorStoreError("refusing to drop the pointer collection")
        self._handles.pop(name, None)
        try:
            self.client.delete_collection(name)
        except Exception as exc:  # chroma raises NotFoundError / ValueError by version
            if "does not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise

    def collections(self) -> list[str]:
        names = [c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()]
        return sorted(
            n for n in names if n.startswith(f"{self.prefix}-") and n != self._pointer_name
        )

    def _target(self, collection: str | None) -> Any:
        return self._collection(collection or self.active_collection())

    # --- chunks -----------------------------------------------------------------------------
    def add(self, records: list[ChunkRecord], collection: str | None = None) -> None:
        if not records:
            return
        target = self._target(collection)
        vectors = self.embedder.embed([r.text for r in records])
        for start in range(0, len(records), 500):
            batch = records[start : start + 500]
            target.upsert(
                ids=[r.id for r in batch],
                documents=[r.text for r in batch],
                metadatas=[r.metadata or {"_": ""} for r in batch],
                embeddings=vectors[start : start + len(batch)].tolist(),
            )

    def delete_document(self, document_id: str, collection: str | None = None) -> int:
        target = self._target(collection)
        found = target.get(where={"document_id": document_id}, include=[])
        if found["ids"]:
            target.delete(ids=found["ids"])
        return len(found["ids"])

    def query(self, text: str, k: int, collection: str | None = None) -> list[RetrievedChunk]:
        """Top-k chunks. Without ``collection`` the active one (:meth:`serving_collection`):
        if a rebuild switched and dropped it meanwhile, the pointer is read again."""
        vector = self.embedder.embed_query(text)
        if collection is not None:
            return self.query_vector(vector, k, target=self._collection(collection))
        name = self.serving_collection()
        try:
            return self.query_vector(vector, k, target=self._collection(name))
        except Exception:
            self._handles.pop(name, None)
            fresh = self.active_collection()
            if fresh == name:
                raise
            return self.query_vector(vector, k, target=self._collection(fresh))

    @traced("chroma query", kind=SpanKind.CLIENT)
    def query_vector(self, vector: list[float], k: int, *, target: Any) -> list[RetrievedChunk]:
        result = target.query(
            query_embeddings=[vector], n_results=k, include=["documents", "metadatas", "distances"]
        )
        out = []
        for id_, doc, meta, dist in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            out.append(
                RetrievedChunk(id=id_, text=doc or "", metadata=dict(meta or {}), score=1.0 - dist)
            )
        return out

    def get(self, ids: list[str], collection: str | None = None) -> dict[str, RetrievedChunk]:
        """The chunks with these ids that exist in the (active) collection, by id."""
        found = self._target(collection).get(ids=ids, include=["documents", "metadatas"])
        return {
            id_: RetrievedChunk(id=id_, text=doc or "", metadata=dict(meta or {}), score=1.0)
            for id_, doc, meta in zip(
                found["ids"], found["documents"], found["metadatas"], strict=True
            )
        }

    def count(self, collection: str | None = None) -> int:
        return int(self._target(collection).count())
