"""bench/cpu.py reads CPU time per process tree and turns it into ms per chat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import cpu

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"


def test_a_busy_child_process_is_counted_with_its_parent() -> None:
    # a parent that sleeps while its child burns 0.3 s of CPU and then sleeps: the tree's time
    # holds the child's
    child = SPIN.format(0.3) + "time.sleep(60)\n"
    code = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\n"
    parent = subprocess.Popen([sys.executable, "-c", code + "time.sleep(60)\n"])
    try:
        with cpu.cpu_meter({"api": parent.pid}) as spent:
            deadline = time.monotonic() + 60  # a polling limit, not a timing assertion
            while cpu.cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert spent["api"] >= 0.25  # the parent's start-up before the meter is not counted
        assert cpu._children(parent.pid)  # the child was alive: counted as the parent's tree
    finally:
        for pid in cpu._children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_ms_per_chat_sums_the_service_but_not_the_stand_ins() -> None:
    spent = {"api": 1.0, "worker": 2.0, "chroma": 0.5, "redis": 0.5, "flow-emulator": 9.0}
    per_chat = cpu.per_chat_ms(spent, 100)
    assert per_chat["worker"] == 20.0
    assert per_chat["service"] == 40.0  # 10 + 20 + 5 + 5: the emulator is reported apart
    table = cpu.cpu_table({**per_chat, "service": 80.0}, per_chat)
    assert "50%" in table.splitlines()[5]  # service: 40 of 80


def test_targets_compare_new_figures_with_today() -> None:
    def result(p95: float, rate: float, service: float) -> dict:
        return {
            "floor": {"p95": 1.0},
            "threaded": {
                "p95": p95,
                "throughput": rate,
                "ideal": 32.0,
                "cpu": {"service": service},
            },
        }

    table = cpu.targets_table(result(1.08, 24.0, 34.0), result(1.02, 31.0, 17.0))
    lines = table.splitlines()
    assert lines[1].rstrip().endswith("yes")  # 97 % of ideal
    assert lines[2].rstrip().endswith("yes")  # 20 ms over the floor
    assert "17.0 ms (half of today)" in lines[3] and lines[3].rstrip().endswith("yes")
    worse = cpu.targets_table(result(1.08, 24.0, 34.0), result(1.05, 30.0, 17.1))
    assert [line.rstrip()[-2:] for line in worse.splitlines()[1:]] == ["NO"] * 3


def test_the_code_root_is_read_from_the_command_line() -> None:
    assert cpu.code_root_from_argv(["--chats", "3", "--code-root", "/tmp/x"]) == Path("/tmp/x")
    assert cpu.code_root_from_argv(["--code-root=/tmp/y"]) == Path("/tmp/y")
    assert cpu.code_root_from_argv(["--chats", "3"]) is None


def test_redis_commands_are_counted_per_chat_by_name(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    with cpu.redis_meter(redis_url) as spent:
        for i in range(30):
            client.set(f"bench:{i}", i)
        for _ in range(10):
            client.xadd("bench:stream", {"a": "b"})
    # the server counts every client's commands: at least ours, and the meter's INFO left out
    assert spent["set"] >= 30
    assert spent["xadd"] >= 10
    per_chat = cpu.commands_per_chat(spent, 10)
    assert per_chat["set"] >= 3.0
    assert per_chat["total"] == sum(v for k, v in per_chat.items() if k != "total")
    assert list(per_chat)[:2] == ["total", "set"]  # busiest first
    table = cpu.commands_table({"total": 8.0, "set": 4.0}, per_chat)
    assert "set" in table and "4.0" in table


def test_the_bench_harness_runs_against_todays_commit(tmp_path: Path) -> None:
    # bench/cpu.py runs this checkout's bench/ against the baseline commit's app/: the harness
    # must import from that older code too (it once named a constant the baseline lacks)
    found = subprocess.run(
        ["git", "-C", str(cpu.BENCH_ROOT), "cat-file", "-e", f"{cpu.BASELINE_COMMIT}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:  # a shallow clone: the benchmark itself could not run either
        import pytest

        pytest.skip(f"commit {cpu.BASELINE_COMMIT} is not in this clone's history")
    code = cpu.checkout(cpu.BASELINE_COMMIT)
    try:
        probe = (
            "import sys\n"
            f"sys.path[:0] = [{str(code)!r}, {str(cpu.BENCH_ROOT)!r}]\n"
            "from bench.harness import NO_KEY_LIMITS\n"
            "from bench import first_token\n"
            f"assert first_token.__file__.startswith({str(cpu.BENCH_ROOT)!r})\n"
            "assert first_token.FIRST_TOKEN_MS\n"
            "import app.local.stack as s\n"
            f"assert s.__file__.startswith({str(code)!r}), s.__file__\n"
            "print(sorted(NO_KEY_LIMITS))\n"
        )
        ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert "MAX_STORED_BYTES_PER_KEY" in ran.stdout and "FLOW_TOKENS_PER_DAY" in ran.stdout
    finally:
        import shutil

        shutil.rmtree(code.parent, ignore_errors=True)


def test_the_first_token_overhead_is_a_target_row_when_measured() -> None:
    def result(first_p95: float | None) -> dict:
        threaded = {"p95": 1.02, "throughput": 31.0, "ideal": 32.0, "cpu": {"service": 17.0}}
        if first_p95 is not None:
            threaded["first_token"] = {"f50": 0.3, "f95": 0.31, "p50": 0.32, "p95": first_p95}
        return {"floor": {"p95": 1.0}, "threaded": threaded}

    assert len(cpu.targets_table(result(None), result(None)).splitlines()) == 4
    lines = cpu.targets_table(result(None), result(0.33)).splitlines()
    assert lines[4].startswith("first-token overhead") and lines[4].rstrip().endswith("yes")
    assert "| -" in lines[4]  # today's side did not measure it
    slow = cpu.targets_table(result(0.33), result(0.35)).splitlines()[4]
    assert "20 ms" in slow and "40 ms" in slow and slow.rstrip().endswith("NO")
