"""Write access to Redis is not code execution: the worker runs only the service's own jobs,
reads jobs as JSON, and never logs a job's description (the question)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import pytest
import redis
from rq import Callback
from rq.job import JobStatus

from app.contracts import QUEUE_NAME
from app.core.redis_clients import job_queue
from app.worker.runner import ALLOWED_CALLBACKS, ALLOWED_JOB_FUNCTIONS, FlowchatWorker, job_refusal


def _worker(connection: redis.Redis) -> tuple[FlowchatWorker, object]:
    queue = job_queue(QUEUE_NAME, connection)
    return FlowchatWorker([queue], connection=connection), queue


def test_a_job_naming_os_system_is_failed_without_running(redis_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    connection = redis.Redis.from_url(redis_url)
    worker, queue = _worker(connection)
    job = queue.enqueue("os.system", f"touch {marker}")
    worker.execute_job(job, queue)
    assert not marker.exists()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "'os.system' is not one of the service's jobs" in (job.latest_result().exc_string or "")


def test_an_allowed_job_with_a_foreign_callback_is_refused(redis_url: str, tmp_path: Path) -> None:
    """A callback is imported and called too: it is checked against its own allowlist."""
    connection = redis.Redis.from_url(redis_url)
    worker, queue = _worker(connection)
    job = queue.enqueue(
        "app.worker.answer_chat", kwargs={"question": "q"}, on_failure=Callback("os.abort")
    )
    worker.execute_job(job, queue)  # os.abort would end this test process
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "callback 'os.abort'" in (job.latest_result().exc_string or "")


def test_jobs_are_stored_as_json_not_pickle(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = job_queue(QUEUE_NAME, connection)
    job = queue.enqueue("app.worker.answer_chat", kwargs={"question": "secret question"})
    import zlib

    raw = zlib.decompress(connection.hget(job.key, "data"))
    assert raw.startswith(b"[")  # a JSON array, not a pickle (b"\x80...")
    assert b"app.worker.answer_chat" in raw


def test_the_worker_logs_job_ids_not_questions(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    connection = redis.Redis.from_url(redis_url)
    worker, queue = _worker(connection)
    job = queue.enqueue("os.getcwd", description="my private question about salaries")
    with caplog.at_level(logging.INFO, logger="rq.worker"):
        worker.dequeue_job_and_maintain_ttl(1)
    assert job.id in caplog.text  # RQ logged the dequeue ...
    assert "salaries" not in caplog.text  # ... by id, without the description


@pytest.mark.parametrize("name", sorted(ALLOWED_JOB_FUNCTIONS | ALLOWED_CALLBACKS))
def test_every_allowed_name_is_importable(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_allowed_job_passes_the_check(redis_url: str) -> None:
    queue = job_queue(QUEUE_NAME, redis.Redis.from_url(redis_url))
    job = queue.enqueue("app.worker.answer_chat", kwargs={"question": "q"})
    assert job_refusal(job) is None


def test_the_stored_job_name_resolves_to_the_runner_without_loading_it_on_import() -> None:
    """Jobs in Redis name ``app.worker.answer_chat`` (CHAT_JOB, also jobs queued before the move
    to app/worker/runner.py): RQ resolves it to the runner's function, and importing the package
    alone (as ``python -m app.worker.probe`` does) loads no worker machinery."""
    from rq.utils import import_attribute

    from app.contracts import CHAT_JOB
    from app.worker import runner

    assert CHAT_JOB == "app.worker.answer_chat"
    assert CHAT_JOB in ALLOWED_JOB_FUNCTIONS
    assert import_attribute(CHAT_JOB) is runner.answer_chat
    code = "import sys, app.worker; print('app.worker.runner' in sys.modules)"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_job_queued_under_the_old_name_runs_the_runners_function(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job enqueued as ``app.worker.answer_chat`` passes the allowlist and runs whatever
    ``app.worker.runner.answer_chat`` is (here a recorder, so no Flow or Chroma is needed)."""
    calls: list[dict] = []

    def recorder(**kwargs: object) -> dict:
        calls.append(dict(kwargs))
        return {"answer": "recorded"}

    monkeypatch.setattr("app.worker.runner.answer_chat", recorder)
    connection = redis.Redis.from_url(redis_url)
    worker, queue = _worker(connection)
    job = queue.enqueue("app.worker.answer_chat", kwargs={"question": "old name"})
    assert job_refusal(job) is None
    worker.execute_job(job, queue)
    assert job.get_status(refresh=True) == JobStatus.FINISHED, job.latest_result().exc_string
    assert calls == [{"question": "old name"}]
    assert job.return_value() == {"answer": "recorded"}
