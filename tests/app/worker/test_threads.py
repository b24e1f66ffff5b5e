"""Threaded chat workers (app.worker.threads): several chats in flight in one worker process,
with RQ's registries, the abandoned-job sweep, per-job timeouts and shutdowns kept honest.

One service (one worker process with THREADS loops, the Flow emulator, one document about
restarting the worker) is shared by the module. The document is what makes every chat wait on
Flow: a question nothing answers is refused without asking Flow, and with the question-embedding
cache such a chat ends in milliseconds, so the emulator's latency would hold no chat in flight
(the tests then depended on whether an earlier test had warmed the cache)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.worker import BaseWorker

from app.contracts import QUEUE_NAME
from app.local.stack import LocalStack, Ports
from app.worker.runner import ALIVE_PREFIX
from app.worker.threads import IDLE_WAIT_SECONDS, LoopWorker, ThreadedWorker

THREADS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        root=tmp_path_factory.mktemp("threaded"),
        ports=Ports.free(),
        workers=1,
        threads=THREADS,
        env_overrides={"MAX_QUEUE_DEPTH": "1000"},
    )
    stack.start()
    try:
        from app.core.settings import load_settings
        from app.local.run import seed_documents

        folder = tmp_path_factory.mktemp("threaded-docs")
        (folder / "restart.md").write_text(
            "# Restart the worker\n\nTo restart the worker, run `python -m ops.worker restart`"
            " and watch the queue drain. The worker finishes its chats before it stops.\n"
        )
        seed_documents(
            stack.base_url, stack.admin_token, folder, load_settings().ALLOWED_EXTENSIONS
        )
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    pool = stack.procs.get("worker")
    if pool is None or pool.poll() is not None:  # a test before this one stopped the pool
        stack.stop_workers()
        stack.start_workers()
    # a killed process leaves its loops registered (for RQ's worker TTL): forget them, so that
    # the loops a test counts are the running ones, whichever test killed a process before
    connection = redis.Redis.from_url(stack.redis_url)
    for loop in _loops(connection):
        if not _running(loop.pid):
            loop.register_death()
    connection.close()
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        yield client
    httpx.post(f"{stack.flow_url}/_emulator/config", json={"latency_ms": 0})


def _running(pid: int | None) -> bool:
    """True while the process ``pid`` runs (not gone, not a zombie)."""
    try:
        status = Path(f"/proc/{pid or 0}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _latency(stack: LocalStack, ms: int) -> None:
    httpx.post(f"{stack.flow_url}/_emulator/config", json={"latency_ms": ms}).raise_for_status()


def _submit(api: httpx.Client, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = api.post("/api/chat", json={"message": f"How do I restart worker {i}?"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _wait_started(connection: redis.Redis, ids: list[str]) -> list[Job]:
    jobs = [Job.fetch(i, connection=connection) for i in ids]
    deadline = time.monotonic() + 30  # a polling limit, not a timing assertion
    while time.monotonic() < deadline:
        if all(j.get_status(refresh=True) == JobStatus.STARTED for j in jobs):
            break
        time.sleep(0.05)
    assert [j.get_status() for j in jobs] == [JobStatus.STARTED] * len(jobs)
    for job in jobs:
        job.refresh()
    return jobs


def _answer(api: httpx.Client, job_id: str) -> dict:
    """The chat's view once it ended (the sweep of a killed loop's jobs runs every 10 s); asks
    again until a polling limit that a busy machine does not reach."""
    deadline = time.monotonic() + 180
    while True:
        view = api.get(f"/api/chat/{job_id}", params={"wait": 30}).json()
        if view["status"] in ("finished", "failed") or time.monotonic() > deadline:
            return view


def _loops(connection: redis.Redis) -> list[Worker]:
    return Worker.all(queue=Queue(QUEUE_NAME, connection=connection))


def test_one_process_runs_a_chat_in_every_loop_at_once(stack: LocalStack, api) -> None:
    connection = redis.Redis.from_url(stack.redis_url)
    loops = _loops(connection)
    assert len(loops) == THREADS
    assert len({w.pid for w in loops}) == 1  # one process ...
    assert len({w.name for w in loops}) == THREADS  # ... registering one RQ worker per loop
    assert all(connection.exists(ALIVE_PREFIX + w.name) for w in loops)

    _latency(stack, 1500)
    ids = _submit(api, THREADS)
    jobs = _wait_started(connection, ids)  # all started while every Flow call is still waiting
    assert len({j.worker_name for j in jobs}) == THREADS
    views = [_answer(api, i) for i in ids]
    assert [v["status"] for v in views] == ["finished"] * THREADS
    for job in jobs:
        job.refresh()
    # every job started before any of them ended: they ran side by side, not one after another
    assert max(j.started_at for j in jobs) < min(j.ended_at for j in jobs)


def test_killing_the_process_puts_every_chat_it_carried_back_in_the_queue(
    stack: LocalStack, api
) -> None:
    connection = redis.Redis.from_url(stack.redis_url)
    _latency(stack, 3000)
    ids = _submit(api, THREADS - 1)
    jobs = _wait_started(connection, ids)
    pids = {
        Worker.find_by_key(Worker.redis_worker_namespace_prefix + j.worker_name, connection).pid
        for j in jobs
    }
    assert len(pids) == 1
    os.kill(pids.pop(), signal.SIGKILL)
    _latency(stack, 0)

    views = [_answer(api, i) for i in ids]
    assert [v["status"] for v in views] == ["finished"] * len(ids), views
    for job in jobs:
        assert Job.fetch(job.id, connection=connection).worker_name != job.worker_name
    # the pool replaced the process: THREADS loops beat again (a polling limit, not a timing)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = [w for w in _loops(connection) if connection.exists(ALIVE_PREFIX + w.name)]
        if len(alive) == THREADS:
            break
        time.sleep(0.2)
    assert len(alive) == THREADS


def test_sigterm_lets_every_chat_in_flight_finish_then_leaves(stack: LocalStack, api) -> None:
    connection = redis.Redis.from_url(stack.redis_url)
    _latency(stack, 2000)
    ids = _submit(api, 2)  # two busy loops, two idle ones (waiting in BLMOVE)
    _wait_started(connection, ids)
    names = {w.name for w in _loops(connection) if connection.exists(ALIVE_PREFIX + w.name)}
    assert len(names) == THREADS
    pool = stack.procs["worker"]
    os.killpg(pool.pid, signal.SIGTERM)  # what `kubectl delete pod` and Ctrl-C send
    try:
        assert pool.wait(180) == 0  # a polling limit: the chats in flight end first
    finally:
        stack.stop_workers()  # a pool that did not leave is killed: the next test starts one
    for job_id in ids:
        assert Job.fetch(job_id, connection=connection).get_status() == JobStatus.FINISHED
    # every loop, busy or idle, unregistered itself (a killed process's loops would linger)
    assert names.isdisjoint(w.name for w in _loops(connection))
    assert not any(connection.exists(ALIVE_PREFIX + name) for name in names)
    _latency(stack, 0)
    stack.start_workers()  # leave the module's service as it was


class _BareLoop(LoopWorker):
    """A work loop without the service's warm-up: ``warm_up`` loads the embedding model and
    builds the process-wide Chroma, Flow and Redis clients from this process's settings, which
    the jobs here never use and which earlier tests of the run may have left pointing at
    services that are gone. What is under test (timeouts, stopping) is the loop's own."""

    def warm_up(self) -> None:
        pass


class _AnyFunctionLoop(_BareLoop):
    """Runs any job function (the service's allowlist, if any, is not under test here)."""

    def perform_job(self, job, queue, execution) -> bool:  # type: ignore[no-untyped-def]
        return BaseWorker.perform_job(self, job, queue, execution)


def spin(seconds: float) -> None:
    """A job that runs Python code for ``seconds`` (a timeout raised in a thread lands between
    bytecodes: a single long C call such as time.sleep(30) would only see it when it returns)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_a_job_over_its_timeout_is_stopped_off_the_main_thread(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    loop = _AnyFunctionLoop([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=loop.serializer)
    job = queue.enqueue(f"{__name__}.spin", 600, job_timeout=1)
    thread = threading.Thread(
        target=lambda: loop.work(burst=True, with_scheduler=False), daemon=True
    )
    thread.start()  # SIGALRM could not reach this thread: RQ's TimerDeathPenalty does
    thread.join(300)  # a polling limit: the job alone would spin for 600 s
    assert not thread.is_alive()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")


def test_an_idle_loop_leaves_soon_after_a_warm_stop(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    loop = _BareLoop([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    thread = threading.Thread(target=lambda: loop.work(with_scheduler=False), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a polling limit, not a timing
    while not Worker.all(connection=connection) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [w.name for w in Worker.all(connection=connection)] == [loop.name]
    loop.request_warm_stop()
    # RQ alone re-reads its stop flag only after a job: an idle loop would wait for ever (it
    # leaves within IDLE_WAIT_SECONDS; the limit is generous for a busy machine)
    thread.join(IDLE_WAIT_SECONDS * 24)
    assert not thread.is_alive()
    assert Worker.all(connection=connection) == []


def test_a_threaded_worker_needs_a_connection_and_a_loop(tmp_path: Path) -> None:
    from app.worker.threads import threaded_worker_class

    with pytest.raises(ValueError, match="at least 1"):
        threaded_worker_class(0)
    with pytest.raises(ValueError, match="Redis connection"):
        ThreadedWorker([QUEUE_NAME])
    assert threaded_worker_class(8).threads == 8


def test_the_command_refuses_zero_threads_with_a_sentence(capsys: pytest.CaptureFixture) -> None:
    from app.worker.cli import main

    assert main(["--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().out
