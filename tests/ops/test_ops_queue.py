"""ops.queue against a real redis-server, drained by a real rq worker process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker

from app.contracts import QUEUE_KEY, QUEUE_NAME
from app.local_stack import free_port
from ops import queue as q

RQ = Path(sys.executable).with_name("rq")


def enqueue(url: str, n: int) -> redis.Redis:
    conn = redis.Redis.from_url(url)
    queue = Queue(QUEUE_NAME, connection=conn)
    for _ in range(n):
        queue.enqueue("time.sleep", 0.01)
    assert conn.llen(QUEUE_KEY) == n
    return conn


def test_drain_succeeds_while_a_real_worker_processes_the_backlog(
    ops_redis: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    enqueue(ops_redis, 25)
    worker = subprocess.Popen(
        [str(RQ), "worker", "--burst", "-w", "rq.worker.SimpleWorker", "--url", ops_redis,
         QUEUE_NAME],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        summary = tmp_path / "summary.md"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
            code = q.main(["drain", "--redis-url", ops_redis, "--interval", "0.05",
                           "--timeout", "120"])  # fmt: skip
    finally:
        # a polling limit: RQ's own worker waits up to 60 s for its command listener on leaving
        worker.wait(timeout=240)
    out = capsys.readouterr().out
    assert code == 0
    assert "depth=25" in out  # the first sample saw the backlog
    assert "depth=0" in out.splitlines()[-2]
    assert "drained" in summary.read_text()


def test_drain_fails_with_a_sentence_when_no_worker_runs(
    ops_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue(ops_redis, 3)
    code = q.main(["drain", "--redis-url", ops_redis, "--interval", "0.05", "--timeout", "0.2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "was not drained within 0.2 s (3 jobs still waiting)" in err


def test_watch_reports_samples_over_time(ops_redis: str) -> None:
    conn = enqueue(ops_redis, 2)
    result = q.watch(conn, interval=0.01, timeout=0.05, progress=lambda _: None)
    assert not result.drained
    assert len(result.samples) >= 2
    assert {s.depth for s in result.samples} == {2}


def test_status_counts_workers_and_failed_jobs(
    ops_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = enqueue(ops_redis, 1)
    queue = Queue(QUEUE_NAME, connection=conn)
    worker = Worker([queue], connection=conn, name="ops-test-worker")
    worker.register_birth()
    job = queue.enqueue("time.sleep", 0)
    job.set_status("failed")
    from rq.registry import FailedJobRegistry

    FailedJobRegistry(queue=queue).add(job, ttl=60)
    try:
        code = q.main(["status", "--redis-url", ops_redis])
    finally:
        worker.register_death()
    out = capsys.readouterr().out
    assert code == 0
    assert "is reachable" in out
    assert "depth=2" in out
    assert "failed=1" in out
    assert "workers=1" in out


def test_status_says_clearly_when_redis_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    code = q.main(["status", "--redis-url", url])
    err = capsys.readouterr().err
    assert code == 1
    assert "is unreachable" in err
    assert "hunter2" not in err  # the password is redacted


def test_redact_url_keeps_host_and_hides_password() -> None:
    assert q.redact_url("redis://user:pw@h:6380/1") == "redis://user:***@h:6380/1"
    assert q.redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_help_exits_zero() -> None:
    with pytest.raises(SystemExit) as exc:
        q.main(["watch", "--help"])
    assert exc.value.code == 0
