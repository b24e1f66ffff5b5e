"""What every benchmark shares: start the service, warm it up, time requests, read percentiles,
print the side-by-side table with the floor.

A benchmark is ``main()`` in its own module (``python bench/NAME.py``): it starts the service
with :func:`service` (the processes `make run` starts, through :func:`app.local.run.start_seeded`,
the same start-up as the live test fixtures, with docs/ ingested), asks its questions
(:data:`QUESTIONS`, about docs/, so answers come with sources), times them with
:func:`run_level`, and prints one row per measure with :func:`print_table`: the floor beside
what is measured and the target. Figures go to docs/performance.md by hand.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/NAME.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO_ROOT))

from app.flow.client import TOKEN_PATH  # noqa: E402
from app.local.stack import LocalStack, Ports  # noqa: E402

try:  # the code root's own lifts, as `make run` applies them
    from app.local.stack import EMULATOR_KEY_LIMITS
except ImportError:  # bench/cpu.py's "today" commit predates the name: it lifted only the tokens
    from app.local.stack import EMULATOR_TOKENS_PER_DAY

    EMULATOR_KEY_LIMITS = {
        "FLOW_TOKENS_PER_DAY": str(EMULATOR_TOKENS_PER_DAY),
        # its settings read the stored-bytes bound already: lift it as today's code does
        "MAX_STORED_BYTES_PER_KEY": str(1 << 40),
    }

# questions about docs/ (which every benchmark's service ingests), so answers come with sources
QUESTIONS = [
    "How do I restart the worker?",
    "How are the Flow credentials rotated?",
    "What should I do when messages are delayed?",
    "How do I rebuild the vector store?",
]

# A benchmark measures the service, not the per-key limits (app.access.quotas;
# bench/closed_service.py measures those): its one anonymous client sends hundreds of chats a
# minute, which the default RATE_LIMIT_PER_MINUTE and FLOW_TOKENS_PER_DAY would refuse with 429.
NO_KEY_LIMITS = {
    "RATE_LIMIT_PER_MINUTE": "1000000",
    **EMULATOR_KEY_LIMITS,  # Flow tokens a day and bytes held in Redis, as `make run` lifts them
    # issue 18's per-key bound on open streams
    "MAX_OPEN_STREAMS_PER_KEY": "100000",
}

ENDED = ("finished", "failed")


# --- the service ----------------------------------------------------------------------------
@contextmanager
def service(
    label: str,
    *,
    workers: int = 1,
    threads: int = 1,
    ingest_workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[LocalStack]:
    """The whole service in a temporary directory, docs/ ingested, stopped on exit. ``env``
    comes on top of :data:`NO_KEY_LIMITS`."""
    stack = LocalStack(
        root=Path(tempfile.mkdtemp(prefix="flowchat-bench-")),
        ports=Ports.free(),
        workers=workers,
        threads=threads,
        ingest_workers=ingest_workers,
        env_overrides={**NO_KEY_LIMITS, **(env or {})},
    )
    print(f"starting {label} ...", flush=True)
    from app.local.run import start_seeded  # here: bench/chat.py's baseline side predates it

    start_seeded(stack)
    try:
        yield stack
    finally:
        stack.stop()


def seed_with_fresh_chat_workers(stack: LocalStack, latency_ms: int) -> None:
    """For a stack started with ``stack.start()`` (code that may predate ``start_seeded``): ingest
    docs/, then restart the chat workers afresh, as a deployment's chat pods are (chat workers
    never ingest, so their start-up ingestion buffers are not measured), and set Flow's latency."""
    from app.core.settings import REPO_ROOT as CODE_ROOT
    from app.core.settings import load_settings
    from app.local.run import seed_documents

    allowed = load_settings().ALLOWED_EXTENSIONS
    seed_documents(stack.base_url, stack.admin_token, CODE_ROOT / "docs", allowed)
    stack.stop_workers()
    stack.start_workers()
    emulate(stack, latency_ms=latency_ms)


def emulate(stack: LocalStack, **knobs: Any) -> None:
    """Set the Flow emulator's knobs (latency_ms, token_latency_ms, ...)."""
    httpx.post(f"{stack.flow_url}/_emulator/config", json=knobs).raise_for_status()


def flow_client(stack: LocalStack, max_connections: int = 64) -> tuple[httpx.Client, dict]:
    """A client of the Flow emulator and the headers of a cached token, for the floor: the
    Flow call the worker makes, sent straight to the gateway."""
    env = stack.env()
    limits = httpx.Limits(max_connections=max_connections)
    flow = httpx.Client(base_url=stack.flow_url, timeout=120, limits=limits)
    token = flow.post(
        TOKEN_PATH,
        headers={"FlowTenant": env["FLOW_TENANT"]},
        json={
            "clientId": env["FLOW_AGENT"],
            "clientSecret": env["FLOW_AGENT_SECRET"],
            "appToAccess": "llm-api",
        },
    ).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "FlowTenant": env["FLOW_TENANT"],
        "FlowAgent": env["FLOW_AGENT"],
    }
    return flow, headers


def api_client(stack: LocalStack, max_connections: int = 64, **kwargs: Any) -> httpx.Client:
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.Client(base_url=stack.base_url, timeout=120, limits=limits, **kwargs)


# --- chats ------------------------------------------------------------------------------------
def wait_answer(api: httpx.Client, job_id: str) -> dict:
    """The chat's view once it ended (GET ?wait=30, again until finished or failed)."""
    while True:
        view = api.get(f"/api/chat/{job_id}", params={"wait": 30}).json()
        if view["status"] in ENDED:
            return view


def chat(api: httpx.Client, question: str) -> dict:
    """POST /api/chat, then the answer; a refused chat or a failed answer ends the benchmark."""
    sent = api.post("/api/chat", json={"message": question})
    if sent.status_code != 202:
        raise SystemExit(f"POST /api/chat answered {sent.status_code}: {sent.text}")
    view = wait_answer(api, sent.json()["id"])
    if view["status"] != "finished":
        raise SystemExit(f"a chat failed: {view.get('error')}")
    return view


# --- timing -----------------------------------------------------------------------------------
def run_level(
    task: Callable[[int], float], concurrency: int, requests: int
) -> tuple[list[float], float]:
    """``requests`` calls of ``task(i)`` (each returns its own latency), ``concurrency`` at a
    time: the latencies and the whole run's wall time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(task, range(requests)))
    return latencies, time.perf_counter() - started


def warm_up(task: Callable[[int], Any], count: int) -> None:
    """Run ``task`` ``count`` times one after another (model, clients and tokens per process
    loaded before anything is measured)."""
    for i in range(count):
        task(i)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def p50_p95(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 95)


# --- the table ----------------------------------------------------------------------------------
def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns side by side (the floor beside what is measured and its target), left-aligned to
    the widest cell, separated by `` | ``."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def met(ok: bool) -> str:
    return "yes" if ok else "NO"
