"""What a durable 202 costs: the service with Redis at `appendfsync everysec` and at `always`.

    python bench/redis_durability.py [--acks 200] [--chats 40] [--clients 16] [--burst 160]
        [--rounds 4]

Starts the whole service twice as `make run` does (LocalStack: Redis, Chroma, the Flow emulator
at 0 ms latency so Redis's share is visible, one chat worker with 32 loops, the API), once per
policy, in a temporary directory on the same disk, and measures, alternating between the two in
``--rounds`` blocks,

* the acknowledgement: POST /api/chat until its 202, one at a time (what a caller waits for the
  enqueue to be on disk), p50 / p95;
* a whole chat, one at a time: the 202, then GET /api/chat/{id}?wait= until it is finished (the
  worker's writes pay the fsync too: stream entries, result, metrics), p50 / p95;
* throughput: ``--clients`` clients sending ``--burst`` whole chats together, chats/s.

and prints both policies side by side with their ratio (`always` / `everysec`). No documents are
ingested: retrieval finds nothing and the chat path is otherwise the production one. Figures go
to docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.contracts import REDIS_APPENDFSYNC
from app.local.stack import LocalStack, Ports
from bench.harness import NO_KEY_LIMITS, QUESTIONS, percentile

POLICIES = ("everysec", REDIS_APPENDFSYNC)


def _ack(api: httpx.Client, i: int) -> tuple[str, float]:
    started = time.perf_counter()
    accepted = api.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]})
    elapsed = time.perf_counter() - started
    if accepted.status_code != 202:
        raise SystemExit(f"chat {i} was refused: {accepted.status_code} {accepted.text[:200]}")
    return accepted.json()["id"], elapsed


def _chat(api: httpx.Client, i: int) -> float:
    started = time.perf_counter()
    job_id, _ = _ack(api, i)
    while True:
        view = api.get(f"/api/chat/{job_id}", params={"wait": 10})
        status = view.json().get("status") if view.status_code == 200 else None
        if status == "finished":
            return time.perf_counter() - started
        if status == "failed":
            raise SystemExit(f"chat {job_id} failed: {view.text[:200]}")


def start(policy: str, root: Path) -> LocalStack:
    stack = LocalStack(
        root=root / policy,
        ports=Ports.free(),
        workers=1,
        threads=32,
        ingest_workers=0,
        env_overrides=dict(NO_KEY_LIMITS),
        redis_appendfsync=policy,
    )
    print(f"starting the service with appendfsync {policy} ...", flush=True)
    stack.start()
    httpx.post(f"{stack.flow_url}/_emulator/config", json={"latency_ms": 0}, timeout=5)
    return stack


def measure(apis: dict[str, httpx.Client], args: argparse.Namespace) -> dict[str, dict]:
    """Both services measured in alternating blocks (``--rounds``), so a change in the machine's
    load during the run weighs on both policies alike."""
    samples = {p: {"acks": [], "chats": [], "burst": 0.0} for p in apis}
    for api in apis.values():
        for i in range(5):  # warm-up: the worker's first chat loads the model
            _chat(api, i)
    for _ in range(args.rounds):
        for policy, api in apis.items():
            samples[policy]["acks"] += [_ack(api, i)[1] for i in range(args.acks // args.rounds)]
            samples[policy]["chats"] += [_chat(api, i) for i in range(args.chats // args.rounds)]
            per_round = args.burst // args.rounds
            with ThreadPoolExecutor(args.clients) as pool:
                started = time.perf_counter()
                list(pool.map(lambda i, api=api: _chat(api, i), range(per_round)))
                samples[policy]["burst"] += time.perf_counter() - started
    done = args.burst // args.rounds * args.rounds
    return {
        policy: {
            "ack_p50": percentile(s["acks"], 50) * 1000,
            "ack_p95": percentile(s["acks"], 95) * 1000,
            "chat_p50": percentile(s["chats"], 50) * 1000,
            "chat_p95": percentile(s["chats"], 95) * 1000,
            "rate": done / s["burst"],
        }
        for policy, s in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acks", type=int, default=200, help="202s measured one at a time")
    parser.add_argument("--chats", type=int, default=40, help="whole chats one at a time")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--burst", type=int, default=160, help="chats sent by those clients")
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per policy")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowchat-durability-", dir=os.getcwd()) as tmp:
        stacks = {}
        try:
            for policy in POLICIES:
                stacks[policy] = start(policy, Path(tmp))
            clients = {p: httpx.Client(base_url=s.base_url, timeout=60) for p, s in stacks.items()}
            figures = measure(clients, args)
            for client in clients.values():
                client.close()
        finally:
            for stack in stacks.values():
                stack.stop()
    slow, safe = (figures[p] for p in POLICIES)
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'':36} {'everysec':>10} {'always':>10} {'always/everysec':>16}")
    rows = (
        ("202 one at a time, p50 (ms)", "ack_p50"),
        ("202 one at a time, p95 (ms)", "ack_p95"),
        ("whole chat one at a time, p50 (ms)", "chat_p50"),
        ("whole chat one at a time, p95 (ms)", "chat_p95"),
        (f"chats/s, {args.clients} clients", "rate"),
    )
    for label, key in rows:
        ratio = safe[key] / slow[key] if slow[key] else float("nan")
        print(f"{label:36} {slow[key]:>10.1f} {safe[key]:>10.1f} {ratio:>15.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
