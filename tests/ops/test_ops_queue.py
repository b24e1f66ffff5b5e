"""ops.queue against a real redis-server, drained by a real rq worker process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry

from app.contracts import INGEST_QUEUE_NAME, QUEUE_KEY, QUEUE_NAME
from app.local.stack import free_port
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
        # rq 3.0's burst worker hangs unsubscribing its pub/sub channel on a password-protected
        # Redis after it is done (SIGTERM too): stop it once the drain is judged
        worker.kill()
        worker.wait(timeout=60)
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


# --- issue 21: password, --stack, both queues, failed jobs -----------------------------------


def stack_file_for(tmp_path: Path, url: str, password: str) -> Path:
    """The connection file `make run` writes, for a Redis of the test's own."""
    from app.local.stack_file import StackFile, write_private

    secret = write_private(tmp_path / "secrets" / "redis-password", password + "\n")
    token = write_private(tmp_path / "secrets" / "admin-token", "unused\n")
    details = StackFile(
        redis_url=url, redis_password_file=secret, admin_token_file=token,
        api_url="http://127.0.0.1:1",
    )  # fmt: skip
    return write_private(tmp_path / "local-stack.json", details.model_dump_json())


def test_a_url_without_the_password_fails_naming_redis_password(
    ops_redis_plain: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21 item 1: what the runbook had on-call type after a port-forward."""
    url, _password = ops_redis_plain
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    assert q.main(["status", "--redis-url", url]) == 1
    err = capsys.readouterr().err
    assert (
        "requires a password and none was given" in err
        and "REDIS_PASSWORD" in err
        and "--stack" in err
    )


def test_help_names_redis_password_and_stack(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["status", "--help"]):
        with pytest.raises(SystemExit):
            q.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "REDIS_PASSWORD" in text and "--stack" in text


def test_status_with_the_password_in_redis_password_reports_both_queues(
    ops_redis_plain: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 4: the ingestion queue is in the status."""
    url, password = ops_redis_plain
    conn = redis.Redis.from_url(url, password=password)
    Queue(INGEST_QUEUE_NAME, connection=conn).enqueue("time.sleep", 0)
    monkeypatch.setenv("REDIS_PASSWORD", password)
    assert q.main(["status", "--redis-url", url]) == 0
    out = capsys.readouterr().out
    assert f"queue {QUEUE_NAME}: depth=0" in out
    assert f"queue {INGEST_QUEUE_NAME}: depth=1" in out


def test_stack_local_reads_the_file_make_run_writes(
    ops_redis_plain: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, password = ops_redis_plain
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(stack_file_for(tmp_path, url, password)))
    enqueue(f"redis://:{password}@{url.removeprefix('redis://')}", 2)
    assert q.main(["status", "--stack", "local"]) == 0
    out = capsys.readouterr().out
    assert f"queue {QUEUE_NAME}: depth=2" in out and password not in out
    assert q.main(["watch", "--stack", "local", "--queue", INGEST_QUEUE_NAME,
                   "--interval", "0.01", "--timeout", "0"]) == 0  # fmt: skip
    assert f"rq:queue:{INGEST_QUEUE_NAME}: depth=0" in capsys.readouterr().out


def test_stack_local_without_a_running_stack_says_to_start_make_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(tmp_path / "nothing.json"))
    assert q.main(["status", "--stack", "local"]) == 1
    assert "start one with `make run`" in capsys.readouterr().err


def _fail_job(conn: redis.Redis, queue_name: str, ended: datetime) -> str:
    """A job that really ran and failed (RQ's synchronous mode records the failure as a worker
    does; a burst worker hangs at exit on a password-protected Redis), dated back to ``ended``."""
    queue = Queue(queue_name, connection=conn, is_async=False)
    job = queue.enqueue("builtins.int", "not a number")
    job.refresh()
    assert job.is_failed
    job.ended_at = ended.replace(tzinfo=None)
    job.save()
    return job.id


def test_failed_list_and_clean_older_than(
    ops_redis_plain: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 5: old failed jobs of both queues are listed, then the old ones deleted."""
    url, password = ops_redis_plain
    conn = redis.Redis.from_url(url, password=password)
    now = datetime.now(UTC)
    old_chat = _fail_job(conn, QUEUE_NAME, now - timedelta(days=8))
    old_ingest = _fail_job(conn, INGEST_QUEUE_NAME, now - timedelta(days=9))
    recent = _fail_job(conn, QUEUE_NAME, now - timedelta(hours=1))
    monkeypatch.setenv("REDIS_PASSWORD", password)

    assert q.main(["failed", "list", "--redis-url", url]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in (old_chat, old_ingest, recent))
    assert "ValueError: invalid literal for int()" in out
    assert "3 failed job(s)" in out

    assert q.main(["failed", "clean", "--redis-url", url, "--older-than", "7d", "--dry-run"]) == 0
    assert "would delete 2 failed job(s)" in capsys.readouterr().out
    assert FailedJobRegistry(QUEUE_NAME, connection=conn).count == 2

    assert q.main(["failed", "clean", "--redis-url", url, "--older-than", "7d"]) == 0
    assert "deleted 2 failed job(s)" in capsys.readouterr().out
    assert FailedJobRegistry(QUEUE_NAME, connection=conn).get_job_ids() == [recent]
    assert FailedJobRegistry(INGEST_QUEUE_NAME, connection=conn).count == 0
    assert not conn.exists(f"rq:job:{old_chat}") and conn.exists(f"rq:job:{recent}")


def test_older_than_refuses_a_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        q.main(["failed", "clean", "--older-than", "soon"])
    assert "is not a duration" in capsys.readouterr().err
