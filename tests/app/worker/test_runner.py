"""The sweep that puts a killed worker's job back in the queue, with a real RQ worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job

from app.contracts import QUEUE_NAME
from app.worker.runner import ALIVE_PREFIX, sweep_abandoned, sweep_queue

WORKER = """
import sys, redis
from rq import SimpleWorker, Queue
connection = redis.Redis.from_url(sys.argv[1])
SimpleWorker([Queue(sys.argv[2], connection=connection)], connection=connection).work(burst=True)
"""


def _start_job(redis_url: str, retry: Retry | None) -> tuple[Job, subprocess.Popen]:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    job = queue.enqueue("time.sleep", 60, job_timeout=600, retry=retry)
    proc = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, QUEUE_NAME])
    deadline = time.monotonic() + 30
    while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.get_status() == "started"
    job.refresh()
    return job, proc


def test_killed_workers_job_goes_back_to_the_queue(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    job, proc = _start_job(redis_url, Retry(max=2))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # RQ alone would leave it "started" for job_timeout + 60 s
    assert sweep_abandoned(connection, QUEUE_NAME, grace=0) == [job.id]
    assert job.get_status(refresh=True) == "queued"
    assert job.id in Queue(QUEUE_NAME, connection=connection).job_ids
    job.refresh()
    assert job.retries_left == 1


def test_without_retries_the_job_fails_with_a_reason(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    job, proc = _start_job(redis_url, None)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sweep_abandoned(connection, QUEUE_NAME, grace=0)
    assert job.get_status(refresh=True) == "failed"
    assert "AbandonedJobError" in (job.latest_result().exc_string or "")


JSON_WORKER = WORKER.replace(
    "SimpleWorker([Queue(sys.argv[2], connection=connection)], connection=connection)",
    "SimpleWorker([Queue(sys.argv[2], connection=connection, serializer=JSONSerializer)], "
    "connection=connection, serializer=JSONSerializer)",
).replace("import sys, redis", "import sys, redis\nfrom rq.serializers import JSONSerializer")


def test_a_failed_abandoned_chat_wakes_its_waiters_from_the_heartbeat_thread(
    redis_url: str,
) -> None:
    """The sweep runs in each worker's heartbeat thread: the failure callback (the chat's
    done signal) must run there too, and the waiters are woken once the failure is recorded."""
    from rq import Callback

    from app.chat.jobs import DONE_KEY, notify_done
    from app.core.redis_clients import JOB_SERIALIZER

    assert "JSONSerializer" in JSON_WORKER  # the replacement above took
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    job = queue.enqueue("time.sleep", 60, job_timeout=600, on_failure=Callback(notify_done))
    proc = subprocess.Popen([sys.executable, "-c", JSON_WORKER, redis_url, QUEUE_NAME])
    try:
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.get_status() == "started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    swept: list[str] = []
    sweeper = threading.Thread(
        target=lambda: swept.extend(sweep_abandoned(connection, QUEUE_NAME, grace=0))
    )
    sweeper.start()
    sweeper.join(60)
    assert swept == [job.id]
    assert job.get_status(refresh=True) == "failed"
    # the callback's push, run in the sweeping thread (a job of another function: no second
    # push, see the next test)
    assert connection.llen(DONE_KEY.format(job.id)) == 1


def test_waiters_of_a_chat_failed_by_the_sweep_are_woken_after_the_record(redis_url: str) -> None:
    from rq.job import JobStatus

    from app.chat.jobs import DONE_KEY
    from app.contracts import CHAT_JOB
    from app.core.redis_clients import JOB_SERIALIZER
    from app.worker.runner import _wake_waiters_of_failed_chats

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    chat = queue.enqueue(CHAT_JOB, question="q")
    other = queue.enqueue("time.sleep", 0)
    running = queue.enqueue(CHAT_JOB, question="q")
    for job in (chat, other):
        job.set_status(JobStatus.FAILED)
    _wake_waiters_of_failed_chats(connection, [chat.id, other.id, running.id, "gone"])
    pushed = {j.id: connection.llen(DONE_KEY.format(j.id)) for j in (chat, other, running)}
    assert pushed == {chat.id: 1, other.id: 0, running.id: 0}


def _strand(connection: redis.Redis, queue: Queue) -> Job:
    """What a worker leaves when it is killed (or Redis restarts) right after it moved a job to
    RQ's intermediate list and before it recorded the start: the job is in neither the queue
    nor the started registry, and its status says "queued"."""
    job = queue.enqueue("time.sleep", 0, retry=Retry(max=2))
    moved = connection.lmove(queue.key, queue.intermediate_queue_key)
    assert moved is not None and moved.decode() == job.id
    assert job.id not in queue.job_ids
    return job


def test_a_job_stranded_between_dequeue_and_start_is_retried(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    job = _strand(connection, queue)
    sweeper = SimpleWorker([queue], connection=connection)
    sweep_queue(sweeper, queue)  # the first sweep that sees it notes when (RQ's first-seen key)
    assert job.id not in queue.job_ids
    # a minute later (RQ's threshold), the next sweep hands it back with one retry used
    first_seen = queue.intermediate_queue.get_first_seen_key(job.id)
    connection.set(first_seen, time.time() - 61)
    sweep_queue(sweeper, queue)
    assert job.get_status(refresh=True) == "queued"
    assert job.id in queue.job_ids
    assert connection.llen(queue.intermediate_queue_key) == 0
    job.refresh()
    assert job.retries_left == 1


def test_a_retry_caught_before_its_start_is_not_judged_by_an_old_mark(redis_url: str) -> None:
    """RQ keeps a job's first-seen mark for a day: a job once caught between dequeue and start,
    then started, must not be handed back at once when a later attempt is caught there again
    (its worker is about to start it: that would run the chat twice)."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    sweeper = SimpleWorker([queue], connection=connection)
    job = _strand(connection, queue)
    first_seen = queue.intermediate_queue.get_first_seen_key(job.id)
    sweep_queue(sweeper, queue)
    assert connection.exists(first_seen)
    # its worker starts it after all: the job leaves the intermediate list
    connection.lrem(queue.intermediate_queue_key, 1, job.id)
    connection.set(first_seen, time.time() - 3600)  # that mark is old by the next episode
    sweep_queue(sweeper, queue)
    assert not connection.exists(first_seen)  # the sweep forgot it
    # a later attempt of the same job is caught between dequeue and start
    connection.rpush(queue.intermediate_queue_key, job.id)
    sweep_queue(sweeper, queue)
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    assert job.id not in queue.job_ids  # left to its worker, a fresh mark taken


def test_a_live_workers_job_is_left_alone(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    job, proc = _start_job(redis_url, Retry(max=2))
    try:
        connection.set(ALIVE_PREFIX + job.worker_name, "1", ex=15)  # what FlowchatWorker beats
        assert sweep_abandoned(connection, QUEUE_NAME, grace=0) == []
        assert job.get_status(refresh=True) == "started"
        # and within the grace period even a silent worker is not swept
        connection.delete(ALIVE_PREFIX + job.worker_name)
        assert sweep_abandoned(connection, QUEUE_NAME, grace=60) == []
    finally:
        proc.kill()
        proc.wait()


def test_the_command_listener_wakes_often_so_a_worker_leaves_at_once(redis_url: str) -> None:
    """RQ's listener sleeps 60 s between reads and redis-py 8 waits for it when RQ stops it:
    every worker (each loop of a threaded one) took up to a minute to leave."""
    from app.worker.runner import PUBSUB_POLL_SECONDS, FlowchatWorker

    connection = redis.Redis.from_url(redis_url)
    worker = FlowchatWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker.subscribe()
    listener = worker.pubsub_thread
    assert listener.is_alive() and listener.sleep_time == PUBSUB_POLL_SECONDS < 60
    worker.unsubscribe()
    assert not listener.is_alive()  # stopped and waited for, not left behind
    connection.close()


def test_a_finished_chat_saves_its_last_heartbeat_with_its_outcome(
    redis_url: str, monkeypatch
) -> None:
    """RQ's own stamp of the heartbeat (a round trip of its own) is left out for a chat that
    returned: the pipeline that records the success saves it with the job."""
    import app.worker as worker_package
    from app.contracts import CHAT_JOB
    from app.core.redis_clients import JOB_SERIALIZER
    from app.worker.runner import FlowchatWorker

    monkeypatch.setattr(worker_package, "answer_chat", lambda **_kw: {"answer": "ok"})

    class NoModel(FlowchatWorker):
        def warm_up(self) -> None:  # the job above needs neither the model nor Chroma
            pass

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    job = queue.enqueue(CHAT_JOB, kwargs={"question": "q"})
    NoModel([queue], connection=connection).work(burst=True)
    stored = connection.hgetall(job.key)
    assert stored[b"status"] == b"finished"
    assert job.return_value(refresh=True) == {"answer": "ok"}
    # stamped when the job ended, and written by the same save as its outcome
    assert stored[b"last_heartbeat"] == stored[b"ended_at"]


def test_the_worker_is_marked_idle_once_between_two_jobs(redis_url: str, monkeypatch) -> None:
    """RQ writes ``state idle`` after a job and again before it waits for the next: the worker
    sends the second only when the state changed in between."""
    import app.worker as worker_package
    from app.contracts import CHAT_JOB
    from app.core.redis_clients import JOB_SERIALIZER
    from app.worker.runner import FlowchatWorker

    monkeypatch.setattr(worker_package, "answer_chat", lambda **_kw: {"answer": "ok"})

    class NoModel(FlowchatWorker):
        def warm_up(self) -> None:
            pass

    connection = redis.Redis.from_url(redis_url)
    states: list[str] = []
    plain_hset = connection.hset

    def hset(name, key=None, value=None, *args, **kwargs):
        if key == "state":
            states.append(str(value))
        return plain_hset(name, key, value, *args, **kwargs)

    connection.hset = hset  # the worker's own writes (its pipelines are not this client)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    jobs = [queue.enqueue(CHAT_JOB, kwargs={"question": f"q{i}"}) for i in range(2)]
    worker = NoModel([queue], connection=connection)
    worker.work(burst=True)
    assert [j.get_status(refresh=True) for j in jobs] == ["finished", "finished"]
    idle = [s for s in states if s.lower().endswith("idle")]
    # once before the first job, once after each job: no second write before the next wait
    assert len(idle) == 3, states
    assert connection.hget(worker.key, "state") in (b"idle", None)  # burst: it may have left


def test_a_failing_sweep_does_not_stop_the_heartbeat(redis_url: str, monkeypatch) -> None:
    """A sweep that raises (a failure callback it ran, a job it could not read) is logged and
    tried again: the worker keeps its alive key, so no other sweep takes it for dead and hands
    its running job to a second worker."""
    import app.worker.runner as runner
    from app.worker.runner import FlowchatWorker

    sweeps: list[int] = []

    def broken_sweep(worker, queue) -> None:
        sweeps.append(1)
        raise ValueError("a document record that does not parse")

    monkeypatch.setattr(runner, "sweep_queue", broken_sweep)
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(runner, "SWEEP_SECONDS", 1)  # a sweep a second (its lock lives 1 s)
    connection = redis.Redis.from_url(redis_url)
    worker = FlowchatWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker._stop_beating = threading.Event()
    beat = threading.Thread(target=worker._beat, daemon=True)
    beat.start()
    try:
        deadline = time.monotonic() + 60  # a polling limit
        while len(sweeps) < 2 and time.monotonic() < deadline:
            connection.delete(runner.SWEEP_LOCK + ":" + QUEUE_NAME)  # let the next beat sweep
            time.sleep(0.05)
        assert len(sweeps) >= 2, "the heartbeat stopped after the first failed sweep"
        assert beat.is_alive()
        connection.delete(ALIVE_PREFIX + worker.name)
        deadline = time.monotonic() + 60
        while not connection.exists(ALIVE_PREFIX + worker.name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connection.exists(ALIVE_PREFIX + worker.name)  # still beating
    finally:
        worker._stop_beating.set()
        beat.join(10)
        connection.close()


def test_a_job_whose_worker_died_before_starting_it_is_retried(redis_url: str) -> None:
    """A worker killed between registering a run (RQ's ``prepare_execution``) and marking the
    job started leaves it "queued" in the started registry and in the intermediate list: RQ's
    cleanup skips it as a leftover, so it stayed there for good. The sweep releases it, and a
    minute later (RQ's threshold) hands it back with one retry used."""
    from rq.executions import prepare_execution

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    job = _strand(connection, queue)
    doomed = SimpleWorker([queue], connection=connection)
    prepare_execution(doomed, job)  # then it is killed: no alive key, no start
    assert job.id in queue.started_job_registry
    assert job.get_status(refresh=True) == "queued"
    sweeper = SimpleWorker([queue], connection=connection)
    for member in connection.zrange(queue.started_job_registry.key, 0, -1):
        # the registration is older than the sweep's grace period
        execution = "rq:execution:" + member.decode()
        connection.hset(execution, "created_at", time.time() - 3600)
    sweep_queue(sweeper, queue)
    assert job.id not in queue.started_job_registry
    connection.set(queue.intermediate_queue.get_first_seen_key(job.id), time.time() - 61)
    sweep_queue(sweeper, queue)
    assert job.id in queue.job_ids
    job.refresh()
    assert job.retries_left == 1


def test_a_run_just_registered_by_a_live_worker_is_left_alone(redis_url: str) -> None:
    from rq.executions import prepare_execution

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    job = _strand(connection, queue)
    worker = SimpleWorker([queue], connection=connection)
    prepare_execution(worker, job)
    sweeper = SimpleWorker([queue], connection=connection)
    connection.set(ALIVE_PREFIX + worker.name, "1", ex=15)  # it beats: about to start the job
    sweep_queue(sweeper, queue)
    assert job.id in queue.started_job_registry
    connection.delete(ALIVE_PREFIX + worker.name)  # silent, but registered within the grace
    assert sweep_abandoned(connection, QUEUE_NAME, grace=60) == []
    assert job.id in queue.started_job_registry
