"""Ingestion and retrieval benchmark: ``python bench/ingest.py [--docs DIR] [--large]``.

Prints, from one run on this machine:

1. ingestion throughput in chunks/s (load + chunk + embed + write to an embedded Chroma in a
   temporary folder), next to the raw embedding throughput on the same chunk texts, so the
   overhead of everything that is not the model is visible;
2. retrieval latency p50/p95 for top-k queries over 10k synthetic chunks (and 100k with
   ``--large``; filling that takes a few minutes): the query embedding and the vector search
   timed apart and together.

Synthetic chunks carry random unit vectors written straight into the collection (embedding
100k real chunks would take an hour on 2 cores); search cost depends on the vectors' count and
dimension, not on their meaning. Never run by ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from app.core.settings import load_settings  # noqa: E402
from app.ingest import LOADERS, chunk_records, load_document  # noqa: E402
from app.rag.embeddings import DIMENSIONS, get_embedder  # noqa: E402
from app.rag.vectorstore import ChunkRecord, VectorStore  # noqa: E402

QUERIES = [
    "How do I restart the worker?",
    "What does a 429 from the Flow gateway mean?",
    "How much disk does Chroma need?",
    "Why did my PDF upload fail?",
    "When does the queue depth alert fire?",
    "How do I rotate the Flow credentials?",
    "What is the on-call escalation path?",
    "How do I rebuild the vector store without downtime?",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def scratch_store(folder: Path, name: str) -> VectorStore:
    settings = load_settings(VECTOR_STORE_PATH=folder, CHROMA_URL=None, CHROMA_COLLECTION=name)
    return VectorStore.from_settings(settings)


def load_records(docs: Path, repeat: int, chunk_size: int, overlap: int) -> list[ChunkRecord]:
    records: list[ChunkRecord] = []
    files = sorted(p for p in docs.rglob("*") if p.is_file() and p.suffix.lower() in LOADERS)
    for copy in range(repeat):
        for path in files:
            doc_id = hashlib.sha256(f"{copy}:{path}".encode()).hexdigest()[:16]
            loaded = load_document(path, path.name)
            records += chunk_records(
                doc_id, path.name, loaded, chunk_size=chunk_size, overlap=overlap
            )
    return records


def bench_ingestion(docs: Path, repeat: int, chunk_size: int, overlap: int, trials: int) -> None:
    """Alternate full ingestion and raw embedding of the same chunks; report the medians (the
    two cores may be shared, so single timings are noisy)."""
    embedder = get_embedder()
    embedder.embed(["warm up the model"])
    ingest_s: list[float] = []
    load_s: list[float] = []
    embed_s: list[float] = []
    records: list[ChunkRecord] = []
    for trial in range(trials):
        with tempfile.TemporaryDirectory(prefix="flowchat-bench-") as tmp:
            store = scratch_store(Path(tmp), f"bench{trial}")
            store.active_collection()
            started = time.perf_counter()
            records = load_records(docs, repeat, chunk_size, overlap)
            loaded = time.perf_counter()
            store.add(records)
            ingest_s.append(time.perf_counter() - started)
            load_s.append(loaded - started)
        texts = [r.text for r in records]
        embed_start = time.perf_counter()
        embedder.embed(texts)
        embed_s.append(time.perf_counter() - embed_start)
    n = len(records)
    total, embed, load = (statistics.median(v) for v in (ingest_s, embed_s, load_s))
    mean_chars = sum(len(r.text) for r in records) / max(n, 1)
    print(f"ingestion of {docs} x{repeat}: {n} chunks (mean {mean_chars:.0f} chars, "
          f"CHUNK_SIZE {chunk_size}, overlap {overlap}); median of {trials} trials")  # fmt: skip
    print(f"  load + chunk       {load:8.2f} s")
    print(f"  ingestion          {n / total:8.1f} chunks/s  ({total:.2f} s)")
    print(f"  raw embedding      {n / embed:8.1f} chunks/s  ({embed:.2f} s)")
    print(f"  non-model overhead {max(total - embed, 0) / total:8.1%} of ingestion time")


def fill_synthetic(store: VectorStore, collection: str, count: int) -> None:
    target = store._collection(collection)
    batch = min(int(store.client.get_max_batch_size()), 5000)
    rng = np.random.default_rng(42)
    for start in range(0, count, batch):
        size = min(batch, count - start)
        vectors = rng.standard_normal((size, DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"synthetic-{start + i}" for i in range(size)]
        target.upsert(
            ids=ids,
            embeddings=vectors.tolist(),
            documents=[f"synthetic chunk {start + i}" for i in range(size)],
            metadatas=[
                {"document_id": f"doc{(start + i) // 50}", "document": "synthetic.md",
                 "title": "Synthetic", "heading": "", "page": 0, "chunk": (start + i) % 50}
                for i in range(size)
            ],
        )  # fmt: skip


def bench_retrieval(count: int, k: int, rounds: int) -> None:
    embedder = get_embedder()
    with tempfile.TemporaryDirectory(prefix="flowchat-bench-") as tmp:
        store = scratch_store(Path(tmp), "retrieval")
        name = store.active_collection()
        started = time.perf_counter()
        fill_synthetic(store, name, count)
        fill = time.perf_counter() - started
        target = store._collection(name)
        store.query_vector(embedder.embed_one(QUERIES[0]), k, target=target)  # load the index
        embed_ms: list[float] = []
        search_ms: list[float] = []
        total_ms: list[float] = []
        for _ in range(rounds):
            for question in QUERIES:
                t0 = time.perf_counter()
                vector = embedder.embed_one(question)
                t1 = time.perf_counter()
                store.query_vector(vector, k, target=target)
                t2 = time.perf_counter()
                embed_ms.append((t1 - t0) * 1000)
                search_ms.append((t2 - t1) * 1000)
                total_ms.append((t2 - t0) * 1000)
    print(
        f"retrieval over {count} chunks (top-{k}, {len(total_ms)} queries; filled in {fill:.1f} s)"
    )
    for label, values in (("query embedding", embed_ms), ("vector search", search_ms),
                          ("total", total_ms)):  # fmt: skip
        print(f"  {label:16s} p50 {percentile(values, 50):7.2f} ms   "
              f"p95 {percentile(values, 95):7.2f} ms")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "tests" / "data" / "eval" / "docs")
    parser.add_argument("--repeat", type=int, default=5, help="ingest the folder this many times")
    parser.add_argument("--large", action="store_true", help="also measure 100k chunks (slow)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the query set")
    parser.add_argument("--trials", type=int, default=3, help="ingestion trials (median)")
    args = parser.parse_args(argv)
    settings = load_settings()
    bench_ingestion(
        args.docs, args.repeat, settings.CHUNK_SIZE, settings.CHUNK_OVERLAP, args.trials
    )
    sizes = [10_000, 100_000] if args.large else [10_000]
    for count in sizes:
        bench_retrieval(count, args.k, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
