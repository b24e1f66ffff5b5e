"""Chats while ingestion runs, and hostile files, against the real local service.

    python bench/ingest_during_chat.py [--chats 48] [--concurrency 4] [--latency-ms 500]

Starts the whole service as `make run` does (2 chat workers on flow_tasks, 1 ingestion worker
on flow_ingest, Chroma, the Flow emulator with the given latency, the API) in a temporary
directory, ingests docs/, then measures in one run:

1. chat latency p50/p95 (POST /api/chat, then GET ?wait=30 until answered) while idle, and
   while a 20-file upload is being ingested, side by side, with the count of chat 429s;
2. for each hostile file of tests/app/ingest/hostile_corpus.py: the time from upload to its
   final status, and the status and reason;
3. peak RSS during the zip bomb: the ingestion worker processes and the sandbox child that
   parses it (sampled from /proc every 20 ms).

Figures go to docs/performance.md by hand. Never run by ``make test``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "app" / "ingest"))

from hostile_corpus import CORPUS  # noqa: E402

from bench.harness import (  # noqa: E402
    QUESTIONS,
    api_client,
    emulate,
    p50_p95,
    print_table,
    run_level,
    service,
    wait_answer,
    warm_up,
)

UPLOAD_FILES = 20


def upload_files() -> list[tuple[str, tuple[str, bytes]]]:
    """20 honest documents of ~40 KB each (~150 chunks apiece to embed)."""
    files = []
    for n in range(UPLOAD_FILES):
        body = "\n\n".join(
            f"## Procedure {n}.{k}\nThe relay bank {n}-{k} is checked by the night shift, who "
            "log its voltage, its temperature and its vibration before the handover. " * 3
            for k in range(60)
        )
        files.append(("files", (f"procedures-{n:02d}.md", f"# Procedures {n}\n\n{body}".encode())))
    return files


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=500)
    args = parser.parse_args(argv)

    with service(
        "the service (2 chat workers, 1 ingestion worker)", workers=2, ingest_workers=1
    ) as stack:
        emulate(stack, latency_ms=args.latency_ms)
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        api = api_client(stack, headers=headers)
        rejected = {"chat_429": 0}

        def chat(i: int) -> float:
            started = time.perf_counter()
            job = api.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]})
            if job.status_code == 429:
                rejected["chat_429"] += 1
                return float("nan")
            view = wait_answer(api, job.json()["id"])
            assert view["status"] == "finished", view
            return time.perf_counter() - started

        def chats() -> list[float]:
            found, _ = run_level(chat, args.concurrency, args.chats)
            return [v for v in found if v == v]

        def documents() -> dict[str, dict]:
            return {d["id"]: d for d in api.get("/api/documents").json()["documents"]}

        warm_up(chat, 4)
        idle = chats()

        ids = {
            d["id"] for d in api.post("/api/documents", files=upload_files()).json()["documents"]
        }
        upload_started = time.perf_counter()
        during = chats()
        pending_after_chats = sum(
            1 for i, d in documents().items() if i in ids and d["status"] in ("queued", "ingesting")
        )
        while any(
            d["status"] in ("queued", "ingesting") for i, d in documents().items() if i in ids
        ):
            time.sleep(0.5)
        ingest_seconds = time.perf_counter() - upload_started

        print(
            f"\nchat latency, {args.chats} chats at concurrency {args.concurrency}, emulator "
            f"{args.latency_ms} ms (the floor)\n"
        )
        print_table(
            ("", "p50", "p95", "chat 429"),
            [
                ("idle (the floor)", *(f"{v:.2f} s" for v in p50_p95(idle)), 0),
                (
                    f"during a {UPLOAD_FILES}-file upload",
                    *(f"{v:.2f} s" for v in p50_p95(during)),
                    rejected["chat_429"],
                ),
            ],
        )
        print(
            f"(the upload: {ingest_seconds:.0f} s to ingest all {UPLOAD_FILES} files; "
            f"{pending_after_chats} still pending when the chats ended)\n"
        )

        pool_pid = stack.procs["ingest-worker"].pid
        print(f"{'hostile file':<18} {'to final':>9}  status: reason")
        for item in CORPUS:
            peak = {"workers": 0, "sandbox": 0}
            stop = threading.Event()

            def sample(peak: dict[str, int] = peak, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    workers = children(pool_pid)
                    peak["workers"] = max([peak["workers"], *(rss_kb(p) for p in workers)])
                    for worker in workers:
                        for child in children(worker):
                            peak["sandbox"] = max(peak["sandbox"], rss_kb(child))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            data = item.make()
            started = time.perf_counter()
            response = api.post("/api/documents", files=[("files", (item.filename, data))])
            document_id = response.json()["documents"][0]["id"]
            while (doc := documents()[document_id])["status"] in ("queued", "ingesting"):
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            stop.set()
            sampler.join()
            reason = (doc["error"] or "")[:90]
            print(f"{item.filename:<18} {elapsed:>8.1f}s  {doc['status']}: {reason}")
            if item.filename.endswith(".docx"):
                print(
                    f"{'':<18} peak RSS: ingestion worker {peak['workers'] / 1024:.0f} MB, "
                    f"sandbox child {peak['sandbox'] / 1024:.0f} MB "
                    f"({len(data) / 1024:.0f} KB file, {256} MB uncompressed)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
