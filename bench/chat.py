"""End-to-end chat latency and throughput against the real local service.

    python bench/chat.py [--workers 4] [--latency-ms 500] [--requests 64] [--concurrency 1 8 32]

Starts the whole service as `make run` does (Redis, Chroma, the Flow emulator with the given
latency, the worker pool, the API) in a temporary directory, ingests docs/, then for each
concurrency level measures:

* the floor: the same chat completion sent straight to the emulator (token cached), and
* the pipeline: POST /api/chat, then GET /api/chat/{id}?wait=30 until the answer is there.

Prints p50/p95 per level, the pipeline's overhead over the floor, and throughput against the
ideal of `workers / emulator latency` at saturation. Figures go to docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.flow.client import CHAT_PATH as FLOW_CHAT_PATH
from app.flow.client import TOKEN_PATH
from app.local_stack import LocalStack, Ports
from app.rag.prompt import build_messages
from app.run_local import seed_documents
from app.settings import REPO_ROOT, load_settings

QUESTIONS = [
    "How do I restart the worker?",
    "How are the Flow credentials rotated?",
    "What should I do when messages are delayed?",
    "How do I rebuild the vector store?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run_level(task, concurrency: int, requests: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for latency in pool.map(task, range(requests)):
            latencies.append(latency)
    return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="flowchat-bench-"))
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=args.workers,
        env_overrides={"MAX_QUEUE_DEPTH": "10000"},
    )
    print(f"starting the service with {args.workers} workers ...", flush=True)
    stack.start()
    try:
        seed_documents(
            stack.base_url,
            stack.admin_token,
            REPO_ROOT / "docs",
            load_settings().ALLOWED_EXTENSIONS,
        )
        env = stack.env()
        httpx.post(f"{stack.flow_url}/_emulator/config", json={"latency_ms": args.latency_ms})
        flow = httpx.Client(
            base_url=stack.flow_url, timeout=60, limits=httpx.Limits(max_connections=64)
        )
        token = flow.post(
            TOKEN_PATH,
            headers={"FlowTenant": env["FLOW_TENANT"]},
            json={
                "clientId": env["FLOW_AGENT"],
                "clientSecret": env["FLOW_AGENT_SECRET"],
                "appToAccess": "llm-api",
            },
        ).json()["access_token"]
        flow_headers = {
            "Authorization": f"Bearer {token}",
            "FlowTenant": env["FLOW_TENANT"],
            "FlowAgent": env["FLOW_AGENT"],
        }
        body = {"model": "gpt-4o-mini", "messages": build_messages(QUESTIONS[0], [])}
        api = httpx.Client(
            base_url=stack.base_url, timeout=60, limits=httpx.Limits(max_connections=64)
        )

        def direct(i: int) -> float:
            t = time.perf_counter()
            flow.post(FLOW_CHAT_PATH, headers=flow_headers, json=body).raise_for_status()
            return time.perf_counter() - t

        def pipeline(i: int) -> float:
            t = time.perf_counter()
            job = api.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]}).json()
            while True:
                view = api.get(f"/api/chat/{job['id']}", params={"wait": 30}).json()
                if view["status"] in ("finished", "failed"):
                    break
            assert view["status"] == "finished", view
            return time.perf_counter() - t

        for _ in range(4):  # warm up every worker (model and clients are loaded per process)
            pipeline(0)
        ideal = args.workers / (args.latency_ms / 1000)
        print(
            f"\nemulator latency {args.latency_ms} ms, {args.workers} workers, "
            f"{args.requests} requests per level; ideal pipeline throughput {ideal:.1f}/s\n"
        )
        print(
            f"{'conc':>4} | {'floor p50':>9} {'floor p95':>9} | {'pipe p50':>9} {'pipe p95':>9} | "
            f"{'ovh p50':>8} {'ovh p95':>8} | {'pipe req/s':>10} {'of ideal':>8}"
        )
        for concurrency in args.concurrency:
            floor, _ = run_level(direct, concurrency, args.requests)
            pipe, elapsed = run_level(pipeline, concurrency, args.requests)
            f50, f95 = statistics.median(floor), percentile(floor, 95)
            p50, p95 = statistics.median(pipe), percentile(pipe, 95)
            throughput = len(pipe) / elapsed
            share = throughput / min(ideal, concurrency / (args.latency_ms / 1000))
            ms = [round(v * 1000) for v in (f50, f95, p50, p95, p50 - f50, p95 - f95)]
            print(
                f"{concurrency:>4} | {ms[0]:>7}ms {ms[1]:>7}ms | {ms[2]:>7}ms {ms[3]:>7}ms | "
                f"{ms[4]:>6}ms {ms[5]:>6}ms | {throughput:>10.2f} {share:>7.0%}",
                flush=True,
            )
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
