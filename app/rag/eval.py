"""Retrieval evaluation: ``python -m app.rag.eval --docs DIR --questions FILE [--k 5]``.

Ingests every document of DIR into a scratch collection (embedded Chroma in a temporary folder;
no Redis, no worker) through the same loaders, chunker and records as the service, asks each
question, and prints hit@1, hit@k and MRR (by the rank of the first chunk from the expected
document), with the misses. ``--min-hit-at-k`` makes it exit 1 below a floor (for CI).

The questions file is a YAML list of ``{question, expected_document, paraphrased?}``, where
``expected_document`` is a file name in DIR.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from app.chat.conversations import standalone_question
from app.chat.results import Turn
from app.core.settings import load_settings
from app.ingest import LOADERS, IngestError, chunk_records, load_document
from app.rag.retrieval import retrieve_any
from app.rag.vectorstore import VectorStore


class Question(BaseModel):
    question: str = Field(min_length=1)
    expected_document: str = Field(min_length=1)
    paraphrased: bool = False
    # a follow-up's earlier question: retrieval searches the question made standalone from it
    # (app.chat.conversations.standalone_question) unless condense=False (--no-condense)
    previous: str | None = None


class Outcome(BaseModel):
    question: str
    expected_document: str
    paraphrased: bool
    rank: int | None  # 1-based rank of the first chunk from the expected document
    top_documents: list[str]


class EvalReport(BaseModel):
    k: int
    chunk_size: int
    overlap: int
    documents: int
    chunks: int
    questions: int
    hit_at_1: float
    hit_at_k: float
    mrr: float
    paraphrased_hit_at_k: float | None
    ingest_seconds: float
    outcomes: list[Outcome]

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.rank is None]


def read_questions(path: Path) -> list[Question]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return TypeAdapter(list[Question]).validate_python(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise SystemExit(f"cannot read questions from {path}: {exc}") from None


def ingest_folder(docs: Path, store: VectorStore, chunk_size: int, overlap: int) -> tuple[int, int]:
    """Load, chunk and add every supported file of ``docs``; returns (documents, chunks)."""
    documents = chunks = 0
    for path in sorted(p for p in docs.iterdir() if p.is_file()):
        if path.suffix.lower() not in LOADERS:
            continue
        document_id = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        try:
            loaded = load_document(path, path.name)
        except IngestError as exc:
            print(f"skipped {path.name}: {exc.reason}", file=sys.stderr)
            continue
        records = chunk_records(
            document_id, path.name, loaded, chunk_size=chunk_size, overlap=overlap
        )
        store.add(records)
        documents += 1
        chunks += len(records)
    return documents, chunks


def evaluate(
    docs: Path,
    questions: list[Question],
    *,
    k: int = 5,
    chunk_size: int | None = None,
    overlap: int | None = None,
    condense: bool = True,
) -> EvalReport:
    defaults = load_settings()
    size = chunk_size or defaults.CHUNK_SIZE
    carry = defaults.CHUNK_OVERLAP if overlap is None else overlap
    with tempfile.TemporaryDirectory(prefix="flowchat-eval-") as tmp:
        settings = load_settings(
            VECTOR_STORE_PATH=Path(tmp), CHROMA_URL=None, CHROMA_COLLECTION="eval"
        )
        store = VectorStore.from_settings(settings)
        started = time.perf_counter()
        documents, chunks = ingest_folder(docs, store, size, carry)
        ingest_seconds = time.perf_counter() - started
        outcomes = []
        for item in questions:
            if item.previous and condense:  # as the worker retrieves for a follow-up
                history = [Turn(role="user", content=item.previous)]
                queries = [item.question, standalone_question(item.question, history)]
                names = [s.document for s in retrieve_any(store, queries, k)]
            else:
                hits = store.query(item.question, k)
                names = [str(h.metadata.get("document", "")) for h in hits]
            rank = (
                names.index(item.expected_document) + 1 if item.expected_document in names else None
            )
            outcomes.append(
                Outcome(
                    question=item.question,
                    expected_document=item.expected_document,
                    paraphrased=item.paraphrased,
                    rank=rank,
                    top_documents=names,
                )
            )
    total = max(len(outcomes), 1)
    paraphrased = [o for o in outcomes if o.paraphrased]
    return EvalReport(
        k=k,
        chunk_size=size,
        overlap=carry,
        documents=documents,
        chunks=chunks,
        questions=len(outcomes),
        hit_at_1=sum(o.rank == 1 for o in outcomes) / total,
        hit_at_k=sum(o.rank is not None for o in outcomes) / total,
        mrr=sum(1 / o.rank for o in outcomes if o.rank) / total,
        paraphrased_hit_at_k=(
            sum(o.rank is not None for o in paraphrased) / len(paraphrased) if paraphrased else None
        ),
        ingest_seconds=round(ingest_seconds, 3),
        outcomes=outcomes,
    )


def render(report: EvalReport) -> str:
    lines = [
        f"documents: {report.documents}  chunks: {report.chunks}  "
        f"(chunk size {report.chunk_size}, overlap {report.overlap}; "
        f"ingested in {report.ingest_seconds:.1f} s)",
        f"questions: {report.questions}",
        f"hit@1: {report.hit_at_1:.3f}",
        f"hit@{report.k}: {report.hit_at_k:.3f}",
        f"MRR@{report.k}: {report.mrr:.3f}",
    ]
    if report.paraphrased_hit_at_k is not None:
        lines.append(f"paraphrased hit@{report.k}: {report.paraphrased_hit_at_k:.3f}")
    late = [o for o in report.outcomes if o.rank not in (None, 1)]
    if late:
        lines.append("below rank 1:")
        lines += [f"  [{o.rank}] {o.question} -> {o.expected_document}" for o in late]
    if report.misses:
        lines.append(f"misses ({len(report.misses)}):")
        for o in report.misses:
            lines.append(f"  {o.question}")
            lines.append(f"    expected {o.expected_document}; got {', '.join(o.top_documents)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.rag.eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--docs", type=Path, required=True, help="folder of documents to ingest")
    parser.add_argument("--questions", type=Path, required=True, help="YAML list of questions")
    parser.add_argument("--k", type=int, default=5, help="chunks retrieved per question")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: CHUNK_SIZE")
    parser.add_argument("--overlap", type=int, default=None, help="default: CHUNK_OVERLAP")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--no-condense",
        action="store_true",
        help="search follow-ups (entries with 'previous') alone, without their earlier question",
    )
    parser.add_argument(
        "--min-hit-at-k", type=float, default=None, help="exit 1 when hit@k is below this"
    )
    args = parser.parse_args(argv)
    if not args.docs.is_dir():
        parser.error(f"--docs {args.docs} is not a folder")
    if args.k < 1:
        parser.error("--k must be at least 1")
    questions = read_questions(args.questions)
    print(f"ingesting {args.docs} and asking {len(questions)} questions ...", flush=True)
    report = evaluate(
        args.docs,
        questions,
        k=args.k,
        chunk_size=args.chunk_size,
        overlap=args.overlap,
        condense=not args.no_condense,
    )
    print(render(report))
    if args.json:
        args.json.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    if args.min_hit_at_k is not None and report.hit_at_k < args.min_hit_at_k:
        print(
            f"FAIL: hit@{report.k} {report.hit_at_k:.3f} is below the floor {args.min_hit_at_k}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
