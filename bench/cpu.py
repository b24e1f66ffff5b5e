"""CPU time per chat, per process of the service (issue 25), and today's code beside the new.

    python bench/cpu.py [--chats 320] [--concurrency 32] [--baseline 1c7dea9]

Wall-clock latency moves with whatever else runs on the machine; the CPU time a process spends
per chat hardly does (other load delays a process, it does not make it execute more), so on a
shared machine the CPU figures are the ones to compare between two versions of the code.

Each process's CPU time is ``utime + stime`` from ``/proc/PID/stat`` (all its threads; its child
processes added, e.g. the worker pool's processes under their supervisor), read before and
after a fixed number of chats. The service is API + chat worker(s) + Chroma + Redis; the Flow
emulator stands in for Flow (it is not the service's CPU) and is reported apart, as are the
ingestion worker (idle during chats) and the benchmark's own client process.

"Today" is the code of an earlier commit (``--baseline``, default ``BASELINE_COMMIT``: the
commit this work started from), extracted with ``git archive`` into a temporary folder and run
from there: its service processes import that folder's ``app`` (``LocalStack`` starts them
with the folder as working directory). ``bench/chat.py`` uses the same helpers to print these
figures beside its latency figures; this module alone runs the CPU measurement quickly, for
one change at a time.

The module imports nothing from ``app`` at import time: with ``--code-root`` the service's
code comes from that folder (put first on ``sys.path`` by ``use_code_root``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

BENCH_ROOT = Path(__file__).resolve().parents[1]
# today's code: main as this work started (the app/ regroup and issue 18 merged)
BASELINE_COMMIT = "1c7dea9"
SERVICE = ("api", "worker", "chroma", "redis")  # what a deployment runs and pays for
APART = ("flow-emulator", "ingest-worker")  # stand-ins and idle pools, shown but not summed
CPU_TARGET = 0.5  # service CPU per chat at most half of today's
OVERHEAD_P95_TARGET_MS = 30.0  # issue 25: overhead over the floor at concurrency 1
THROUGHPUT_TARGET = 0.95  # issue 25: of the ideal at saturation (one process of 32 loops)
FIRST_TOKEN_TARGET_MS = 30.0  # issue 25: first-token overhead p95 the chat page needs
_TICK = os.sysconf("SC_CLK_TCK")


def code_root_from_argv(argv: list[str]) -> Path | None:
    """The ``--code-root DIR`` in ``argv`` (read before anything imports ``app``)."""
    for i, arg in enumerate(argv):
        if arg == "--code-root" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--code-root="):
            return Path(arg.split("=", 1)[1]).resolve()
    return None


def use_code_root(argv: list[str]) -> None:
    """Put the service code of ``--code-root`` (else this checkout) first on ``sys.path``."""
    root = code_root_from_argv(argv) or BENCH_ROOT
    if "app" in sys.modules:
        raise RuntimeError("app was imported before the code root was chosen")
    sys.path.insert(0, str(root))


# --- CPU time of a process tree ----------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) and of its live descendants."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    own = (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of proc(5)
    return own + sum(cpu_seconds(child) for child in _children(pid))


@contextmanager
def cpu_meter(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each named process (tree) spent inside the block, plus this process's own
    (``bench client``). The dict is filled when the block ends."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = os.times()
    spent: dict[str, float] = {}
    yield spent
    after = os.times()
    spent.update({name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})
    spent["bench client"] = (after.user - own.user) + (after.system - own.system)


def redis_calls(url: str) -> dict[str, int]:
    """Calls per command since redis-server started (``INFO commandstats``), e.g. ``{"xadd": 12}``;
    ``evalsha`` counts a whole Lua script once, the commands it runs apart under their names."""
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@contextmanager
def redis_meter(url: str) -> Iterator[dict[str, int]]:
    """Redis commands each name received inside the block (the meter's own ``INFO`` left out)."""
    before = redis_calls(url)
    spent: dict[str, int] = {}
    yield spent
    after = redis_calls(url)
    spent.update({k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)})
    spent["info"] = spent.get("info", 0) - 1
    if spent["info"] <= 0:
        del spent["info"]


def commands_per_chat(spent: dict[str, int], chats: int) -> dict[str, float]:
    """Commands per chat by name, busiest first, with the ``total``: a figure the machine's load
    does not move (unlike CPU ms), so two versions of the code compare exactly."""
    out = {k: n / chats for k, n in sorted(spent.items(), key=lambda kv: -kv[1])}
    return {"total": sum(out.values()), **out}


def commands_table(today: dict[str, float] | None, new: dict[str, float], top: int = 12) -> str:
    names = list(dict.fromkeys([*new, *(today or {})]))[: top + 1]
    rows = [("Redis command", "today /chat", "new /chat")]
    for name in names:
        before = today.get(name) if today else None
        rows.append(
            (
                name,
                f"{before:.1f}" if before is not None else "-",
                f"{new.get(name, 0.0):.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def per_chat_ms(spent: dict[str, float], chats: int) -> dict[str, float]:
    out = {name: seconds * 1000 / chats for name, seconds in spent.items()}
    out["service"] = sum(out.get(name, 0.0) for name in SERVICE)
    return out


def stack_pids(stack) -> dict[str, int]:  # a LocalStack of either code root
    return {name: proc.pid for name, proc in stack.procs.items()}


# --- today's code in a temporary folder --------------------------------------------------------
def checkout(commit: str) -> Path:
    """``git archive`` of ``commit`` extracted into a new temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"flowchat-{commit}-"))
    archive = folder / "code.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(BENCH_ROOT), "archive", commit], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "code", filter="data")
    archive.unlink()
    # only the service code is today's: the benchmarks are this checkout's (bench/ is a
    # namespace package, so an old bench/NAME.py first on the path would shadow today's)
    shutil.rmtree(folder / "code" / "bench", ignore_errors=True)
    return folder / "code"


def run_on(code_root: Path, script: str, args: list[str]) -> dict:
    """Run ``bench/<script>`` of this checkout against the service code in ``code_root``;
    return the JSON it writes."""
    out = Path(tempfile.mkstemp(prefix="flowchat-bench-", suffix=".json")[1])
    try:
        argv = [sys.executable, str(BENCH_ROOT / "bench" / script), "--code-root", str(code_root)]
        subprocess.run([*argv, "--json-out", str(out), *args], check=True, cwd=code_root)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def run_on_commit(commit: str, script: str, args: list[str]) -> dict:
    """:func:`run_on` the code of ``commit`` (extracted, then removed)."""
    code = checkout(commit)
    try:
        return run_on(code, script, args)
    finally:
        shutil.rmtree(code.parent, ignore_errors=True)


# --- printing ----------------------------------------------------------------------------------
def cpu_table(today: dict[str, float] | None, new: dict[str, float]) -> str:
    names = [*SERVICE, "service", *APART, "bench client"]
    label = {
        "service": "service (API + worker + Chroma + Redis)",
        "flow-emulator": "Flow emulator (apart)",
        "ingest-worker": "ingestion worker (apart)",
        "bench client": "benchmark client (apart)",
    }
    rows = [("process", "today ms/chat", "new ms/chat", "new / today")]
    for name in names:
        if name not in new:
            continue
        before = today.get(name) if today else None
        rows.append(
            (
                label.get(name, name),
                f"{before:.2f}" if before is not None else "-",
                f"{new[name]:.2f}",
                f"{new[name] / before:.0%}" if before else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def targets_table(today: dict | None, new: dict) -> str:
    """Issue 25's targets from two ``bench/chat.py`` results (``{"floor": ..., "threaded":
    ...}``, each against its own run's floor): today's and the new figures side by side."""

    def overhead(r: dict) -> float:
        return (r["threaded"]["p95"] - r["floor"]["p95"]) * 1000

    def share(r: dict) -> float:
        return r["threaded"]["throughput"] / r["threaded"]["ideal"]

    def cpu(r: dict) -> float:
        return r["threaded"]["cpu"]["service"]

    def shown(r: dict | None, f, fmt: str) -> str:
        return fmt.format(f(r)) if r else "-"

    cpu_limit = CPU_TARGET * cpu(today) if today else None
    rows = [
        ("target", "today", "new", "target", "met"),
        (
            "throughput at saturation (steady state), of ideal",
            shown(today, share, "{:.0%}"),
            shown(new, share, "{:.0%}"),
            f">= {THROUGHPUT_TARGET:.0%}",
            "yes" if share(new) >= THROUGHPUT_TARGET else "NO",
        ),
        (
            "overhead over the floor at concurrency 1, p95",
            shown(today, overhead, "{:.0f} ms"),
            shown(new, overhead, "{:.0f} ms"),
            f"<= {OVERHEAD_P95_TARGET_MS:.0f} ms",
            "yes" if overhead(new) <= OVERHEAD_P95_TARGET_MS else "NO",
        ),
        (
            "service CPU per chat (API + worker + Chroma + Redis)",
            shown(today, cpu, "{:.1f} ms"),
            shown(new, cpu, "{:.1f} ms"),
            f"<= {cpu_limit:.1f} ms (half of today)" if cpu_limit else "half of today",
            ("yes" if cpu(new) <= cpu_limit else "NO") if cpu_limit else "-",
        ),
    ]
    if new["threaded"].get("first_token"):  # bench/first_token.py's measure, reported beside

        def first(r: dict) -> float:
            got = r["threaded"]["first_token"]
            return (got["p95"] - got["f95"]) * 1000

        known = today is not None and bool(today["threaded"].get("first_token"))
        rows.append(
            (
                "first-token overhead at concurrency 1, p95",
                shown(today if known else None, first, "{:.0f} ms"),
                shown(new, first, "{:.0f} ms"),
                f"<= {FIRST_TOKEN_TARGET_MS:.0f} ms",
                "yes" if first(new) <= FIRST_TOKEN_TARGET_MS else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


# --- the quick measurement: a fixed number of chats at a fixed concurrency -----------------------
def measure_service(chats: int, concurrency: int, threads: int, latency_ms: int) -> dict:
    """Start the service (code imported from the first ``sys.path`` entry), ingest docs/,
    restart the chat workers, warm up, then CPU ms per chat per process over ``chats`` chats."""
    import httpx

    from app.local.stack import LocalStack, Ports
    from bench.harness import NO_KEY_LIMITS, QUESTIONS, seed_with_fresh_chat_workers

    root = Path(tempfile.mkdtemp(prefix="flowchat-cpu-"))
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=1,
        threads=threads,
        env_overrides={"MAX_QUEUE_DEPTH": "10000", **NO_KEY_LIMITS},
    )
    stack.start()
    try:
        seed_with_fresh_chat_workers(stack, latency_ms)
        limits = httpx.Limits(max_connections=4 * concurrency + 8)
        api = httpx.Client(base_url=stack.base_url, timeout=120, limits=limits)

        def chat(i: int) -> None:
            sent = api.post("/api/chat", json={"message": QUESTIONS[i % len(QUESTIONS)]})
            sent.raise_for_status()
            job = sent.json()["id"]
            while True:
                got = api.get(f"/api/chat/{job}", params={"wait": 30})
                view = got.json()
                if got.status_code != 200:
                    raise SystemExit(f"GET /api/chat answered {got.status_code}: {got.text}")
                if view["status"] in ("finished", "failed"):
                    break
            if view["status"] != "finished":
                raise SystemExit(f"a chat failed: {view.get('error')}")

        def run(n: int) -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(chat, range(n)))
            return time.perf_counter() - started

        run(2 * concurrency)  # warm every loop, connection and cache
        with redis_meter(stack.redis_url) as commands, cpu_meter(stack_pids(stack)) as spent:
            elapsed = run(chats)
        return {
            "cpu": per_chat_ms(spent, chats),
            "rate": chats / elapsed,
            "redis": commands_per_chat(commands, chats),
        }
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=320, help="chats measured (after warm-up)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=32, help="loops of the worker process")
    parser.add_argument("--latency-ms", type=int, default=1000, help="emulated Flow latency")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="today's commit")
    parser.add_argument("--skip-today", action="store_true", help="measure this code only")
    parser.add_argument("--code-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_code_root(argv)
    sys.path.insert(1, str(BENCH_ROOT))  # bench.harness of this checkout
    run_args = [
        f"--chats={args.chats}",
        f"--concurrency={args.concurrency}",
        f"--threads={args.threads}",
        f"--latency-ms={args.latency_ms}",
    ]
    if args.json_out:  # one side of a comparison, run by the parent
        result = measure_service(args.chats, args.concurrency, args.threads, args.latency_ms)
        args.json_out.write_text(json.dumps(result))
        return 0
    today = None
    if not args.skip_today:
        print(f"today's code ({args.baseline}) ...", flush=True)
        today = run_on_commit(args.baseline, "cpu.py", run_args)
    print("this code ...", flush=True)
    new = run_on(BENCH_ROOT, "cpu.py", run_args)
    print(
        f"\n{args.chats} chats at concurrency {args.concurrency}, one worker process of "
        f"{args.threads} loops, Flow emulator at {args.latency_ms} ms; load average "
        f"{os.getloadavg()[0]:.1f} (CPU ms per chat hardly moves with load; the rates do)\n"
    )
    print(cpu_table(today["cpu"] if today else None, new["cpu"]))
    print()
    print(commands_table(today["redis"] if today else None, new["redis"]))
    print(
        f"\nchats/s: today {today['rate']:.1f}, new {new['rate']:.1f}"
        if today
        else f"\nchats/s: {new['rate']:.1f}"
    )
    if today:
        ratio = new["cpu"]["service"] / today["cpu"]["service"]
        met = "met" if ratio <= CPU_TARGET else "NOT met"
        print(f"service CPU per chat: {ratio:.0%} of today's (target <= {CPU_TARGET:.0%}): {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
