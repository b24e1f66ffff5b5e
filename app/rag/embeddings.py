"""Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime (no torch, nothing downloaded).

The model folder is the one Chroma's stock ONNX embedding function reads (seeded by
``python -m app.rag.model_setup``), so collections stay readable by any Chroma client. We run
the same graph ourselves rather than through Chroma's function because Chroma pads every input to
256 tokens (about 26 ms a query here) while padding to the longest input in a batch costs ~4 ms
and gives the same vectors (padding is masked out of the mean pooling).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.observability.tracing import traced
from app.rag.model_setup import MODEL_DIR

MAX_TOKENS = 256  # the model's training length; Chroma truncates at the same point
DIMENSIONS = 384
# questions whose vectors a process keeps (least recently used dropped first): ~1.6 KB each as
# a list of floats, so ~3 MB; a repeated question (the same words) then costs no model run
QUERY_CACHE_SIZE = 2048


class EmbeddingModelMissing(RuntimeError):
    pass


class Embedder:
    """Thread-safe embedder; load it once per process (see :func:`get_embedder`)."""

    def __init__(
        self, model_dir: Path = MODEL_DIR, *, batch_size: int = 32, intra_op_threads: int = 0
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path = model_dir / "model.onnx"
        if not onnx_path.exists():
            raise EmbeddingModelMissing(
                f"embedding model not found at {onnx_path}; run `python -m app.rag.model_setup`"
            )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest input
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if intra_op_threads:
            # one query at a time per thread: onnxruntime's own pool (one thread per core, and
            # spinning while it waits) doubles the CPU a single query costs
            options.intra_op_num_threads = intra_op_threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self._queries_lock = threading.Lock()

    @traced("embedding")
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (mean pooling over real tokens)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        rows = []
        for start in range(0, len(texts), self.batch_size):
            rows.append(self._embed_batch(list(texts[start : start + self.batch_size])))
        return np.vstack(rows)

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()

    @traced("embedding")  # one span per question, whether the cache had it or not
    def embed_query(self, text: str) -> list[float]:
        """One question's vector, from a bounded LRU cache of recent questions (the model is
        deterministic: the same text always gives the same vector)."""
        with self._queries_lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return list(cached)
        vector = tuple(self._embed_batch([text])[0].tolist())  # not embed(): one span
        with self._queries_lock:
            self._queries[text] = vector
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return list(vector)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the tokenizer's padding state is shared
            encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder(*, intra_op_threads: int = 0) -> Embedder:
    """The process-wide embedder (loaded on first use, then shared by every job). The first
    call's ``intra_op_threads`` wins (0: onnxruntime's default, one thread per core)."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            _embedder = Embedder(intra_op_threads=intra_op_threads)
        return _embedder
