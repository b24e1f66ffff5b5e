"""Chat workers against their targets, in one run: the floor, today's design, the threaded design.

    python bench/chat.py [--workers 1] [--threads 32] [--latency-ms 1000] [--requests 32]

Starts the whole service as `make run` does (Redis, Chroma, the Flow emulator at the given
latency, the chat workers, the API) in a temporary directory, ingests docs/, then measures

* the floor: the Flow call the worker makes (the question with the sources retrieval found
  for it, streamed and read to its end) sent straight to the emulator (token cached); the
  same call without streaming is printed for comparison;
* the threaded design: ``--workers`` processes x ``--threads`` work loops (WORKER_THREADS);
* today's design: the same ``--workers`` processes with one loop each (one chat per process),
  restarted in the same service.

and prints the four targets of issue 13 side by side:

1. concurrency: ``workers x threads`` chats sent at once all finish within 2 s (1 s latency);
2. memory: worker memory per chat in flight at that load <= 20 MB (PSS of the worker processes,
   the pool supervisor included, sampled during the burst; RSS shown too);
3. overhead: pipeline p95 minus floor p95 at concurrency 1 <= 20 ms;
4. throughput at saturation (2 x capacity clients; steady state: the difference between a run
   of 16 requests per loop and one of 8, which cancels the lockstep start and the tail) >= 95 %
   of the ideal, in-flight capacity / Flow latency (the long run's own rate is printed too).

It also prints the time to drain a full queue (MAX_QUEUE_DEPTH jobs) at the measured rate
against the runbook's 2 minutes. Figures go to docs/performance.md by hand.

CPU per chat (issue 25, ``bench/cpu.py``): the CPU time of each process of the service over the
saturation runs, per chat; then the same whole benchmark is run again on today's code
(``--baseline``, extracted into a temporary folder) and issue 25's targets are printed with
today's and the new figures side by side (``--skip-baseline`` skips that second run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import cpu  # imports nothing from app

# ruff: noqa: E402 - app is imported after the code root (this checkout or today's) is chosen
cpu.use_code_root(sys.argv)  # with --code-root: the service code of today's commit

from app.contracts import QUEUE_DRAIN_SECONDS
from app.core.settings import load_settings
from app.flow.client import CHAT_PATH as FLOW_CHAT_PATH
from app.local.stack import LocalStack, Ports
from app.rag.prompt import Source, build_messages
from bench import first_token
from bench.harness import (
    NO_KEY_LIMITS,
    QUESTIONS,
    emulate,
    flow_client,
    percentile,
    seed_with_fresh_chat_workers,
)

CONCURRENCY_TARGET_SECONDS = 2.0
MEMORY_TARGET_MB = 20.0
OVERHEAD_TARGET_MS = 20.0
THROUGHPUT_TARGET = 0.95
SATURATION_ROUNDS = 16  # requests per loop at saturation: long enough to reach a steady state


def run_level(task: Callable[[int], float], concurrency: int, requests: int) -> tuple[list, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(task, range(requests)))
    return latencies, time.perf_counter() - started


def saturate(task: Callable[[int], float], concurrency: int, rounds: int, per_round: int):
    """Throughput of a whole run of ``rounds x per_round`` requests, and in the steady state:
    the difference between that run and one half as long, ``(N2 - N1) / (T2 - T1)``, which
    cancels what both runs share (the lockstep start, the last answers' tail)."""
    short = (rounds // 2) * per_round
    long = rounds * per_round
    _, t_short = run_level(task, concurrency, short)
    _, t_long = run_level(task, concurrency, long)
    return long / t_long, (long - short) / (t_long - t_short)


# --- memory of the worker processes -------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return pids
    for task in tasks:
        try:  # threads (a job's timer) come and go while we read
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids.extend(_tree(int(child)))
    return pids


def _kb(pid: int, path: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


class MemorySampler:
    """Peak PSS (all worker processes) and peak RSS (largest process) while it runs."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.pss_mb = 0.0
        self.rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pids = _tree(self.root_pid)
        pss = sum(_kb(p, "smaps_rollup", "Pss") for p in pids) / 1024
        rss = max(_kb(p, "status", "VmRSS") for p in pids) / 1024
        self.pss_mb, self.rss_mb = max(self.pss_mb, pss), max(self.rss_mb, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.1)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes (WORKERS)")
    parser.add_argument("--threads", type=int, default=32, help="loops per process")
    parser.add_argument("--latency-ms", type=int, default=1000, help="emulated Flow latency")
    parser.add_argument("--requests", type=int, default=32, help="requests at concurrency 1")
    parser.add_argument("--skip-today", action="store_true", help="skip today's design (~40 s)")
    parser.add_argument("--baseline", default=cpu.BASELINE_COMMIT, help="today's commit (CPU)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip today's commit")
    parser.add_argument("--code-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    capacity = args.workers * args.threads

    root = Path(tempfile.mkdtemp(prefix="flowchat-bench-"))
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=args.workers,
        threads=args.threads,
        env_overrides={"MAX_QUEUE_DEPTH": "10000", **NO_KEY_LIMITS},
    )
    print(f"starting the service: {args.workers} worker(s) x {args.threads} loops ...", flush=True)
    stack.start()
    try:
        seed_with_fresh_chat_workers(stack, args.latency_ms)
        limits = httpx.Limits(max_connections=4 * capacity + 8)
        flow, flow_headers = flow_client(stack, max_connections=4 * capacity + 8)
        api = httpx.Client(base_url=stack.base_url, timeout=120, limits=limits)
        timings: list[dict[str, float]] = []
        answers: dict[int, dict] = {}

        def pipeline(i: int) -> float:
            t = time.perf_counter()
            sent = api.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]})
            if sent.status_code != 202:
                raise SystemExit(f"POST /api/chat answered {sent.status_code}: {sent.text}")
            job = sent.json()
            while True:
                view = api.get(f"/api/chat/{job['id']}", params={"wait": 30}).json()
                if view["status"] in ("finished", "failed"):
                    break
            assert view["status"] == "finished", view
            timings.append(view["timings"])
            answers[i % len(QUESTIONS)] = view
            return time.perf_counter() - t

        # The floor is the Flow call the worker makes, sent straight to the emulator: the same
        # messages (question + the sources retrieval found for it), streamed and read to its end
        print("asking each question once for the floor's messages ...", flush=True)
        run_level(pipeline, 1, len(QUESTIONS))
        messages = [
            build_messages(q, [Source.model_validate(s) for s in answers[n]["sources"]])
            for n, q in enumerate(QUESTIONS)
        ]

        def direct(i: int) -> float:
            body = {
                "model": "gpt-4o-mini",
                "messages": messages[i % len(QUESTIONS)],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            t = time.perf_counter()
            with flow.stream("POST", FLOW_CHAT_PATH, headers=flow_headers, json=body) as r:
                r.raise_for_status()
                for _line in r.iter_lines():
                    pass
            return time.perf_counter() - t

        def direct_whole(i: int) -> float:
            """The same call without streaming (one JSON answer): shown for comparison."""
            body = {"model": "gpt-4o-mini", "messages": messages[i % len(QUESTIONS)]}
            t = time.perf_counter()
            flow.post(FLOW_CHAT_PATH, headers=flow_headers, json=body).raise_for_status()
            return time.perf_counter() - t

        def measure(label: str, in_flight: int) -> dict[str, float]:
            print(f"measuring {label} ...", flush=True)
            run_level(pipeline, in_flight, 2 * in_flight)  # warm every loop and connection
            with MemorySampler(stack.procs["worker"].pid) as memory:
                burst, burst_elapsed = run_level(pipeline, in_flight, in_flight)
            timings.clear()
            single, _ = run_level(pipeline, 1, args.requests)
            phases = {
                k: statistics.median(x[k] for x in timings) * 1000
                for k in ("queued_seconds", "retrieval_seconds", "flow_seconds", "total_seconds")
            }
            print(
                "  at concurrency 1, medians: queued {queued_seconds:.0f} ms, retrieval "
                "{retrieval_seconds:.0f} ms, Flow call {flow_seconds:.0f} ms, submit to stored "
                "answer {total_seconds:.0f} ms".format(**phases),
                flush=True,
            )
            with cpu.cpu_meter(cpu.stack_pids(stack)) as spent:
                overall, steady = saturate(pipeline, 2 * in_flight, SATURATION_ROUNDS, in_flight)
            chats = (SATURATION_ROUNDS // 2 + SATURATION_ROUNDS) * in_flight
            return {
                "burst": max(burst),
                "burst_elapsed": burst_elapsed,
                "pss": memory.pss_mb,
                "rss": memory.rss_mb,
                "p50": statistics.median(single),
                "p95": percentile(single, 95),
                "throughput": steady,
                "throughput_overall": overall,
                "ideal": in_flight / latency,
                "in_flight": in_flight,
                "cpu": cpu.per_chat_ms(spent, chats),
            }

        print("measuring the floor ...", flush=True)
        floor_burst, _ = run_level(direct, capacity, capacity)
        floor_single, _ = run_level(direct, 1, args.requests)
        whole_single, _ = run_level(direct_whole, 1, args.requests)
        print(
            f"  one Flow call at concurrency 1, p50 / p95: streamed "
            f"{statistics.median(floor_single) * 1000:.0f} / "
            f"{percentile(floor_single, 95) * 1000:.0f} ms (the floor), not streamed "
            f"{statistics.median(whole_single) * 1000:.0f} / "
            f"{percentile(whole_single, 95) * 1000:.0f} ms",
            flush=True,
        )
        _, floor_steady = saturate(direct, capacity, SATURATION_ROUNDS, capacity)
        floor = {
            "burst": max(floor_burst),
            "p50": statistics.median(floor_single),
            "p95": percentile(floor_single, 95),
            "throughput": floor_steady,
        }
        threaded = measure(f"the threaded design ({capacity} in flight)", capacity)
        print(f"  worker memory at {capacity} in flight: PSS {threaded['pss']:.0f} MB", flush=True)
        # issue 25: the chat page's first token, on the same service (bench/first_token.py's
        # emulator pacing), reported beside the other targets
        print("measuring the first token at concurrency 1 ...", flush=True)
        emulate(stack, latency_ms=first_token.FIRST_TOKEN_MS, token_latency_ms=first_token.TOKEN_MS)
        threaded["first_token"] = first_token.measure(stack, 1, args.requests)
        emulate(stack, latency_ms=args.latency_ms, token_latency_ms=0)
        today = None
        if not args.skip_today:
            stack.stop_workers()
            stack.threads = 1
            stack.start_workers()
            today = measure(f"today's design ({args.workers} in flight)", args.workers)
            # today's design carries `workers` chats at once: the same burst queues behind them
            print(f"measuring today's design with {capacity} chats at once ...", flush=True)
            today_burst, _ = run_level(pipeline, capacity, capacity)
            today["burst"] = max(today_burst)
    finally:
        stack.stop()
    if args.json_out:  # the baseline side of a run, for the parent to print
        args.json_out.write_text(json.dumps({"floor": floor, "threaded": threaded}))
        return 0
    baseline = None
    if not args.skip_baseline:
        print(f"the same benchmark on today's code ({args.baseline}) ...", flush=True)
        side = ["--skip-today", "--skip-baseline", f"--requests={args.requests}"]
        side += [f"--workers={args.workers}", f"--threads={args.threads}"]
        side += [f"--latency-ms={args.latency_ms}"]
        baseline = cpu.run_on_commit(args.baseline, "chat.py", side)

    def overhead(d: dict[str, float]) -> str:
        return f"{(d['p50'] - floor['p50']) * 1000:.0f} / {(d['p95'] - floor['p95']) * 1000:.0f} ms"

    def per_chat(d: dict[str, float]) -> str:
        return f"{d['pss'] / d['in_flight']:.1f} MB (RSS {d['rss']:.0f} MB)"

    def share(d: dict[str, float]) -> str:
        return (
            f"{d['throughput']:.2f}/s, {d['throughput'] / d['ideal']:.0%} of {d['ideal']:.0f}/s "
            f"(whole run {d['throughput_overall'] / d['ideal']:.0%})"
        )

    t = threaded
    rows = [
        (
            f"{capacity} chats at once: all done",
            f"{floor['burst']:.2f} s",
            f"{today['burst']:.2f} s" if today else "-",
            f"{t['burst']:.2f} s",
            f"<= {CONCURRENCY_TARGET_SECONDS:.0f} s",
            t["burst"] <= CONCURRENCY_TARGET_SECONDS,
        ),
        (
            "worker memory per chat in flight",
            "-",
            per_chat(today) if today else "-",
            per_chat(t),
            f"<= {MEMORY_TARGET_MB:.0f} MB",
            t["pss"] / t["in_flight"] <= MEMORY_TARGET_MB,
        ),
        (
            "overhead at concurrency 1 (p50 / p95)",
            f"{floor['p50'] * 1000:.0f} / {floor['p95'] * 1000:.0f} ms",
            overhead(today) if today else "-",
            overhead(t),
            f"p95 <= {OVERHEAD_TARGET_MS:.0f} ms",
            (t["p95"] - floor["p95"]) * 1000 <= OVERHEAD_TARGET_MS,
        ),
        (
            "throughput at saturation (steady state)",
            f"{floor['throughput']:.2f}/s",
            share(today) if today else "-",
            share(t),
            f">= {THROUGHPUT_TARGET:.0%} of ideal",
            t["throughput"] / t["ideal"] >= THROUGHPUT_TARGET,
        ),
    ]
    print(
        f"\nFlow emulator at {args.latency_ms} ms; {args.workers} worker process(es); "
        f"threaded: {args.threads} loops each; today's design: 1 loop each\n"
    )
    header = ("target", "floor", "today", "threaded", "target", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, [*widths, 3], strict=True)))
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        print(" | ".join([*cells, "yes" if row[5] else "NO"]))
    depth = load_settings().MAX_QUEUE_DEPTH
    rate = t["throughput"]
    print(
        f"\nrunbook: a full queue ({depth} jobs, MAX_QUEUE_DEPTH) drains in {depth / rate:.1f} s "
        f"at the measured rate; at 5 s Flow latency {depth / (rate * latency / 5):.1f} s "
        f"(runbook: within {QUEUE_DRAIN_SECONDS} s)"
    )
    print(
        f"\nCPU ms per chat over the saturation runs (today: {args.baseline}; load average "
        f"{os.getloadavg()[0]:.1f}: compare CPU, which other load hardly moves)\n"
    )
    print(cpu.cpu_table(baseline["threaded"]["cpu"] if baseline else None, threaded["cpu"]))
    print("\nissue 25's targets\n")
    print(cpu.targets_table(baseline, {"floor": floor, "threaded": threaded}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
