"""Ingestion on the real service (`make run`'s stack: API, chat and ingestion worker pools,
Chroma server, Flow emulator): hostile files, killed workers and a Chroma restart end every
document ``ingested`` or ``failed`` with a reason, and chats keep being answered."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from hostile_corpus import CORPUS
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler

from app.contracts import INGEST_QUEUE_NAME
from app.core.redis_clients import JOB_SERIALIZER
from app.core.settings import get_settings
from app.ingest import jobs
from app.ingest.queueing import ingest_job_id
from app.worker.runner import ALIVE_PREFIX, sweep_abandoned

DEADLINE_SECONDS = 180  # a polling limit, not an assertion about speed
# ~150 chunks: long enough to be caught while it runs
LONG_DOC = "\n\n".join(
    f"Section {n}. The quartz relay number {n} is inspected by the night shift, who log the "
    "voltage, the temperature and the vibration of each relay before the morning handover. " * 3
    for n in range(150)
).encode()


@pytest.fixture
def admin(live_service) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
def connection(live_service) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(live_service.redis_url)
    yield client
    client.close()


def ingest_pids(connection: redis.Redis) -> set[int]:
    """The ingestion workers beating now (a killed one stays registered until its key expires)."""
    queue = Queue(INGEST_QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    workers = Worker.all(queue=queue)
    return {w.pid for w in workers if w.pid and connection.exists(ALIVE_PREFIX + w.name)}


def documents(client: httpx.Client) -> dict[str, dict]:
    return {d["id"]: d for d in client.get("/api/documents").json()["documents"]}


def wait_for(check, what: str, timeout: float = DEADLINE_SECONDS, state=None):
    """``check()`` once it is truthy; on timeout, fail naming ``what`` and, with ``state``,
    what it returns (the queue as the test last saw it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}" + (f"; {state()}" if state else ""))


def ingest_state(connection: redis.Redis, job_id: str) -> str:
    """Where the job is and what each ingestion worker and the retry scheduler are doing."""
    queue = Queue(INGEST_QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
        where = f"job {job.get_status()} with {job.retries_left} retries left"
    except Exception as exc:  # a diagnosis must not hide the failure it explains
        where = f"job unreadable ({type(exc).__name__})"
    workers = [
        f"{w.name} pid {w.pid} {w.get_state()} on {w.get_current_job_id()} "
        f"alive={bool(connection.exists(ALIVE_PREFIX + w.name))}"
        for w in Worker.all(queue=queue)
    ]
    scheduled = queue.scheduled_job_registry.get_job_ids()
    lock = connection.get(RQScheduler.get_locking_key(INGEST_QUEUE_NAME))
    return (
        f"{where}; queued {queue.get_job_ids()}; scheduled {scheduled}; "
        f"scheduler lock {lock!r}; workers {workers}"
    )


def wait_done(client: httpx.Client, ids: set[str]) -> dict[str, dict]:
    def done() -> dict[str, dict] | None:
        mine = {i: d for i, d in documents(client).items() if i in ids}
        finished = all(d["status"] in ("ingested", "failed") for d in mine.values())
        return mine if finished and len(mine) == len(ids) else None

    return wait_for(done, f"documents {sorted(ids)} to finish")


def ask(client: httpx.Client, question: str) -> dict:
    job = client.post("/api/chat", json={"message": question})
    assert job.status_code == 202, job.text  # never 429: ingestion is not on the chat queue
    url = f"/api/chat/{job.json()['id']}"
    return wait_for(
        lambda: (a := client.get(url, params={"wait": 30}).json())["status"] != "queued" and a,
        "the chat answer",
        60,
    )


def delete_all(client: httpx.Client, ids: set[str]) -> None:
    for document_id in ids:
        client.delete(f"/api/documents/{document_id}")


def test_hostile_files_fail_with_the_limit_named_and_chats_are_answered_meanwhile(
    live_service, admin: httpx.Client, connection: redis.Redis
) -> None:
    live_service.emulator.reset()
    pids = wait_for(lambda: ingest_pids(connection), "the ingestion pool beating")
    files = [("files", (item.filename, item.make())) for item in CORPUS]
    response = admin.post("/api/documents", files=files)
    assert response.status_code == 202, response.text
    ids = {d["id"]: d["filename"] for d in response.json()["documents"]}
    try:
        answer = ask(admin, "How do I restart the worker?")  # sent right behind them
        assert answer["status"] == "finished" and answer["answer"], answer
        done = wait_done(admin, set(ids))
        by_name = {ids[i]: d for i, d in done.items()}
        for item in CORPUS:
            document = by_name[item.filename]
            assert document["status"] == item.status, (item.filename, document)
            for word in item.reason_words:
                assert word in document["error"], (item.filename, document["error"])
        assert ingest_pids(connection) == pids  # no worker died
        assert ask(admin, "How do I restart the worker?")["status"] == "finished"
    finally:
        delete_all(admin, set(ids))


def _kill_the_worker_running(connection: redis.Redis, job_id: str) -> None:
    queue = Queue(INGEST_QUEUE_NAME, connection=connection, serializer=JOB_SERIALIZER)

    def running() -> Worker | None:
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
        status = job.get_status()
        if status in (JobStatus.FINISHED, JobStatus.FAILED):  # over before it could be caught
            pytest.fail(f"{job_id} ended before a kill; {ingest_state(connection, job_id)}")
        if status != JobStatus.STARTED:  # a worker that only registered the run has not begun
            return None  # it (killing it then is test_runner's case of a job never started)
        # a live worker (a killed one stays registered, with its alive key deleted below)
        for worker in Worker.all(queue=queue):
            alive = connection.exists(ALIVE_PREFIX + worker.name)
            if alive and worker.name == job.worker_name:
                return worker
        return None

    # the pool respawns the killed worker, which loads its model and takes over the retry
    # scheduler before it runs the retry: minutes on a machine whose cores are both busy
    worker = wait_for(
        running,
        f"a worker to start {job_id}",
        3 * DEADLINE_SECONDS,
        lambda: ingest_state(connection, job_id),
    )
    os.kill(worker.pid, signal.SIGKILL)
    # what the alive key's TTL and the next sweep do within ~30 s, done now
    connection.delete(ALIVE_PREFIX + worker.name)

    def swept() -> bool:
        # this sweep, or the pool's own (its respawned worker sweeps too), ends the attempt
        sweep_abandoned(connection, INGEST_QUEUE_NAME, grace=0)
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
        return job.get_status() != JobStatus.STARTED or job.worker_name != worker.name

    wait_for(swept, f"{job_id} swept", DEADLINE_SECONDS)


def test_a_document_whose_worker_is_killed_three_times_fails_then_reupload_ingests(
    live_service, admin: httpx.Client, connection: redis.Redis, monkeypatch
) -> None:
    # the sweep runs the job's failure callback here: give it the service's document store
    monkeypatch.setenv("DOCUMENTS_PATH", str(live_service.stack.root / "documents"))
    get_settings.cache_clear()
    upload = [("files", ("quartz-relays.txt", LONG_DOC))]
    document_id = admin.post("/api/documents", files=upload).json()["documents"][0]["id"]
    try:
        for _ in range(3):  # attempts 1, 2 and 3 (INGEST_RETRY_INTERVALS has two entries)
            _kill_the_worker_running(connection, ingest_job_id(document_id))
        failed = wait_done(admin, {document_id})[document_id]
        assert failed["status"] == "failed"
        assert failed["error"] == (
            "ingestion failed after 3 attempt(s): the worker processing it stopped "
            "(killed, out of memory or restarted)"
        )
        again = admin.post("/api/documents", files=upload).json()["documents"][0]
        assert again["id"] == document_id and again["status"] == "queued"
        assert wait_done(admin, {document_id})[document_id]["status"] == "ingested"
    finally:
        get_settings.cache_clear()
        delete_all(admin, {document_id})


def test_a_chroma_restart_mid_ingest_is_retried_after_an_interval(
    live_service, admin: httpx.Client, connection: redis.Redis
) -> None:
    stack = live_service.stack
    upload = [("files", ("relay-restart.txt", LONG_DOC.replace(b"quartz", b"basalt")))]
    stack._stop("chroma")
    try:
        document_id = admin.post("/api/documents", files=upload).json()["documents"][0]["id"]

        def retrying() -> bool:  # the job's own count: no window between attempts to catch
            job = Job.fetch(
                ingest_job_id(document_id), connection=connection, serializer=JOB_SERIALIZER
            )
            return (job.retries_left or 0) < 2

        wait_for(retrying, "the first attempt to fail while Chroma is down")
        assert documents(admin)[document_id]["status"] != "failed"
    finally:
        stack.start_chroma()
    try:
        done = wait_done(admin, {document_id})[document_id]
        assert (done["status"], done["error"]) == ("ingested", None), done
        assert done["chunks"] > 100
    finally:
        delete_all(admin, {document_id})
    jobs._vector_store.cache_clear()


def test_sigterm_drains_the_ingest_pool_the_running_job_finishes(
    live_service, admin: httpx.Client, connection: redis.Redis
) -> None:
    """What Kubernetes does on a rollout or a scale-in: SIGTERM to the pool (PID 1)."""
    stack = live_service.stack
    pool = stack.procs["ingest-worker"]
    upload = [("files", ("relay-drain.txt", LONG_DOC.replace(b"quartz", b"granite")))]
    document_id = admin.post("/api/documents", files=upload).json()["documents"][0]["id"]
    try:
        wait_for(lambda: documents(admin)[document_id]["status"] == "ingesting", "the job start")
        pool.send_signal(signal.SIGTERM)
        pool.wait(DEADLINE_SECONDS)
        assert pool.returncode == 0
        document = documents(admin)[document_id]
        assert (document["status"], document["error"]) == ("ingested", None), document
    finally:
        stack.procs.pop("ingest-worker", None)
        stack.start_ingest_workers()
        delete_all(admin, {document_id})
