"""What closing the service costs: per-key limits per request, and Redis memory per result.

    python bench/closed_service.py [--requests 500] [--results 1000]

Starts a redis-server of its own (password, maxmemory, noeviction, as `make run`), then, in one
run so the figures compare:

* limits overhead: ``--requests`` keyed ``POST /api/chat`` through the real app (in process,
  real Redis) with the per-key limits, and the same with the limits replaced by a no-op;
  prints the mean per request of each, side by side, and their difference and ratio;
* Redis memory per 1,000 results: ``used_memory`` before and after ``--results`` chat jobs
  queued the way the API queues them, each finished with a result shaped like a real answer
  (an answer and five 800-character sources); prints bytes per result, per 1,000, and how many
  fit in the `make run` maxmemory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.api.main import create_app
from app.contracts import CHAT_JOB, QUEUE_NAME
from app.core.redis_clients import job_queue
from app.core.settings import load_settings
from app.local.stack import REDIS_MAXMEMORY, free_port, wait_until

PASSWORD = "bench-password"
KEY = "bench-key"


def start_redis(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = root / "redis.conf"
    config.write_text(f"requirepass {PASSWORD}\n")
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", str(config), "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root),
         "--maxmemory", REDIS_MAXMEMORY, "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, password=PASSWORD)
    wait_until(lambda: bool(client.ping()), "redis-server", 20, proc)
    return proc, port


class NoLimits:
    def admit(self, _key_id: str) -> None:
        return None

    def reserve(self, _key_id: str, _tokens: int, _stored_bytes: int) -> None:
        return None

    def release(self, _key_id: str, _tokens: int, _stored_bytes: int) -> None:
        return None


def time_requests(client: TestClient, count: int) -> float:
    headers = {"X-API-Key": KEY}
    started = time.perf_counter()
    for i in range(count):
        response = client.post("/api/chat", json={"message": f"question {i}"}, headers=headers)
        assert response.status_code == 202, response.text
    return (time.perf_counter() - started) / count


def limits_overhead(port: int, count: int) -> tuple[float, float]:
    settings = load_settings(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        REDIS_PASSWORD=PASSWORD,
        API_KEYS=KEY,
        RATE_LIMIT_PER_MINUTE=10**9,
        FLOW_TOKENS_PER_DAY=10**12,  # every request reserves; none is refused
        MAX_STORED_BYTES_PER_KEY=10**15,
        MAX_QUEUE_DEPTH=10**9,
    )
    with TestClient(create_app(settings)) as client:
        time_requests(client, 20)  # warm up both paths
        quotas = client.app.state.quotas  # type: ignore[attr-defined]
        with_limits, without = [], []
        for _ in range(3):  # interleave, so drift hits both sides alike
            client.app.state.quotas = quotas  # type: ignore[attr-defined]
            with_limits.append(time_requests(client, count))
            client.app.state.quotas = NoLimits()  # type: ignore[attr-defined]
            without.append(time_requests(client, count))
    return min(with_limits), min(without)


def memory_per_result(port: int, count: int) -> float:
    from rq.results import Result

    connection = redis.Redis(port=port, password=PASSWORD, db=1)
    connection.flushdb()
    queue = job_queue(QUEUE_NAME, connection)
    source = {
        "n": 1, "document_id": "d" * 32, "document": "runbook.md", "title": "Runbook",
        "heading": "Restart Worker", "page": None, "score": 0.81, "text": "x" * 800,
    }  # fmt: skip
    result = {
        "answer": "y" * 600,
        "sources": [dict(source, n=n) for n in range(1, 6)],
        "timings": {"queued_seconds": 0.01, "retrieval_seconds": 0.03, "flow_seconds": 0.8,
                    "total_seconds": 0.84},
        "empty": False,
    }  # fmt: skip
    before = int(connection.info("memory")["used_memory"])
    for i in range(count):
        job = queue.enqueue(
            CHAT_JOB,
            kwargs={"question": f"How do I restart the worker? {i}", "top_k": None,
                    "submitted_at": time.time(), "key_id": "0123456789ab"},
            result_ttl=86400, description="chat",
        )  # fmt: skip
        connection.lrem(queue.key, 1, job.id)  # as a worker dequeues it
        Result.create(job, Result.Type.SUCCESSFUL, ttl=86400, return_value=result)
    after = int(connection.info("memory")["used_memory"])
    connection.flushdb()
    return (after - before) / count


def parse_size(text: str) -> int:
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
    return int(text[:-2]) * units[text[-2:].lower()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--results", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            with_limits, without = limits_overhead(port, args.requests)
            per_result = memory_per_result(port, args.results)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"POST /api/chat, mean of {args.requests} (best of 3 interleaved runs):")
    print(f"  with per-key limits   {with_limits * 1000:8.3f} ms")
    print(f"  limits as a no-op     {without * 1000:8.3f} ms  (floor)")
    print(
        f"  overhead              {(with_limits - without) * 1000:8.3f} ms "
        f"({with_limits / without:.2f}x the floor)"
    )
    maxmemory = parse_size(REDIS_MAXMEMORY)
    print(f"Redis memory per chat result ({args.results} jobs with results):")
    print(f"  per result            {per_result / 1024:8.2f} KiB")
    print(f"  per 1,000 results     {per_result * 1000 / 1024**2:8.2f} MiB")
    print(f"  results in maxmemory {REDIS_MAXMEMORY}: {int(maxmemory / per_result):,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
