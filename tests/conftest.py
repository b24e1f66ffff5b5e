"""Fixtures that start real servers on free loopback ports and clean up after themselves.

- ``redis_server``: Debian's redis-server (session-wide); ``redis_url`` gives each test a database
  of its own, never used by another test of the run (what an earlier test left running cannot
  touch it), flushed before and after.
- ``chroma_server``: ``chroma run`` on a temporary directory (session-wide).
- ``live_service``: the whole service started exactly as ``make run`` starts it
  (:class:`app.local.stack.LocalStack`, :func:`app.local.run.start_seeded`: the benchmarks'
  start-up too), with ``docs/`` ingested; started once for the run (``live_stack``) and settled
  before each test (emulator defaults, no maintenance, workers up, no chat in flight), so the
  order of the tests cannot change their results (``pytest-randomly`` shuffles it every run).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from service_testlib import ANSWER_DEADLINE, wait_for_answer

from app.contracts import ALIVE_PREFIX, INGEST_QUEUE_NAME, QUEUE_NAME
from app.local.stack import LocalStack, Ports, StartupError, free_port, wait_until


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port; yields its base URL (``redis://127.0.0.1:PORT``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (.ci/run does)")
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            str(REDIS_DATABASES),
            "--dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    try:
        wait_until(lambda: bool(client.ping()), "redis-server", 20, proc)
        yield f"redis://127.0.0.1:{port}"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


# one database per test that asks for one: a thread or callback an earlier test left behind keeps
# writing to its own database, never to a later test's (Redis allocates empty databases lazily)
REDIS_DATABASES = 4096
_db_counter = itertools.count(1)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A flushed database of the session's redis-server that no other test of the run uses."""
    url = f"{redis_server}/{next(_db_counter) % REDIS_DATABASES or 1}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``chroma run`` on a temporary directory; yields its URL."""
    import sys

    port = free_port()
    path = tmp_path_factory.mktemp("chroma")
    binary = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200,
            "chroma",
            60,
            proc,
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class EmulatorControl:
    """Drives the Flow emulator of a running service (its /_emulator admin routes)."""

    url: str

    def configure(self, **knobs: object) -> dict:
        response = httpx.post(f"{self.url}/_emulator/config", json=knobs, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_emulator/stats", timeout=5).json()

    def reset(self) -> None:
        self.configure(
            error_rate=0.0,
            rate_limit_rate=0.0,
            latency_ms=0,
            fail_next=0,
            token_latency_ms=0,
            stream_fail_after=0,
            streaming=True,
            fail_status=500,
            token_lifetime=3600.0,
        )


@dataclass
class LiveService:
    stack: LocalStack
    emulator: EmulatorControl

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    @property
    def admin_token(self) -> str:
        return self.stack.admin_token

    @property
    def redis_url(self) -> str:
        return self.stack.redis_url

    def stop_workers(self) -> None:
        """Stop the chat pool and clear its registrations (a killed pool leaves them); the
        ingestion pool's workers, still running, stay registered."""
        from rq import Queue, Worker

        self.stack.stop_workers()
        client = redis.Redis.from_url(self.redis_url)
        try:
            for worker in Worker.all(queue=Queue(QUEUE_NAME, connection=client)):
                worker.register_death()
        finally:
            client.close()

    def start_workers(self) -> None:
        self.stack.start_workers()

    def answer(self, client: httpx.Client, job_id: str, deadline: float = ANSWER_DEADLINE) -> dict:
        """The chat's view once it has ended (finished or failed), asking again (the API waits
        at most 30 s per request) until ``deadline`` seconds have passed: a busy machine makes
        a chat slower, never different. The view as last read when the deadline passes."""
        return wait_for_answer(client, job_id, deadline)

    def settle(self, timeout: float = 120) -> None:
        """Put the shared service back in the state every test starts from, whatever the test
        before did: the emulator's defaults, no maintenance flag, the chat workers running,
        no chat queued or in flight (jobs an earlier test left finish first), and every
        per-key counter back at zero (requests, Flow tokens, stored bytes, open streams: a
        test that chats until a condition holds sends more chats on a busy machine, and the
        tests after it must not inherit its spend)."""
        from rq import Queue, Worker
        from rq.registry import StartedJobRegistry

        from app.access.quotas import KEY_PREFIX as QUOTA_PREFIX
        from app.core.maintenance import MaintenanceTracker

        self.emulator.reset()
        for name, start in (
            ("worker", self.start_workers),
            ("ingest-worker", self.stack.start_ingest_workers),
        ):
            proc = self.stack.procs.get(name)
            if proc is None or proc.poll() is not None:
                start()
        client = redis.Redis.from_url(self.redis_url)
        try:
            tracker = MaintenanceTracker(client, threshold=1)
            tracker.set_operator(False, None)
            tracker.flow_succeeded()
            queue = Queue(QUEUE_NAME, connection=client)
            started = StartedJobRegistry(QUEUE_NAME, connection=client)
            with contextlib.suppress(StartupError):  # a job stuck for longer: the sweep's job
                wait_until(
                    lambda: not client.llen(queue.key) + client.zcard(started.key), "idle", timeout
                )
            stale = list(client.scan_iter(match=f"{QUOTA_PREFIX}:*", count=1000))
            if stale:
                client.delete(*stale)
            # the ingestion pool beating again (a test may have killed or drained it)
            ingest = Queue(INGEST_QUEUE_NAME, connection=client)
            wait_until(
                lambda: any(client.exists(ALIVE_PREFIX + w.name) for w in Worker.all(queue=ingest)),
                "an ingestion worker alive",
                timeout,
            )
        finally:
            client.close()


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """The whole service as `make run` starts it, with docs/ ingested, started once for the run.
    Tests ask for :func:`live_service`, which settles it before each of them."""
    from app.local.run import start_seeded

    root = tmp_path_factory.mktemp("service")
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=2,
        env_overrides={
            "FLOW_MAX_RETRIES": "2",
            "MAINTENANCE_AFTER_FAILURES": "2",
            # 3 attempts: the second 1 s after the first, the third 20 s later (a Chroma restart
            # on a busy machine fits before it; the kill test kills three attempts)
            "INGEST_RETRY_INTERVALS": "1,20",
            "RATE_LIMIT_PER_MINUTE": "100000",
            "FLOW_TOKENS_PER_DAY": "100000000",
        },
    )
    start_seeded(stack)
    try:
        yield LiveService(stack=stack, emulator=EmulatorControl(stack.flow_url))
    finally:
        stack.stop()


@pytest.fixture
def live_service(live_stack: LiveService) -> LiveService:
    """The session's service, settled for this test (:meth:`LiveService.settle`): what an
    earlier test changed or left running cannot change this one's result."""
    live_stack.settle()
    return live_stack


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A service of its own (one worker, docs/ ingested) for the API fuzzer, which deletes
    documents, starts rebuilds and flips the maintenance flag: it must not share live_service."""
    from app.local.run import start_seeded

    stack = LocalStack(
        root=tmp_path_factory.mktemp("fuzzed"),
        ports=Ports.free(),
        workers=1,
        env_overrides={"RATE_LIMIT_PER_MINUTE": "100000", "FLOW_TOKENS_PER_DAY": "100000000"},
    )
    start_seeded(stack)
    try:
        yield stack
    finally:
        stack.stop()


@dataclass
class TenantService:
    """A service with two API keys that distrust each other (``API_KEYS=a,b``, as a shared
    deployment has them), a Redis with a password, and no documents but one the fixture uploads
    through the admin API (so a chat reaches Flow: a question nothing answers is refused
    without asking it)."""

    stack: LocalStack
    emulator: EmulatorControl
    key_a: str
    key_b: str

    def headers(self, key: str) -> dict[str, str]:
        return {"X-API-Key": key}


@pytest.fixture(scope="module")
def tenant_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantService]:
    import secrets

    key_a, key_b = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    stack = LocalStack(
        root=tmp_path_factory.mktemp("tenants"),
        ports=Ports.free(),
        workers=2,
        threads=4,
        ingest_workers=1,
        env_overrides={
            "API_KEYS": f"{key_a},{key_b}",
            "RATE_LIMIT_PER_MINUTE": "100000",
            "MAX_OPEN_STREAMS_PER_KEY": "3",
        },
    )
    stack.start()
    try:
        from app.core.settings import load_settings
        from app.local.run import seed_documents

        folder = tmp_path_factory.mktemp("tenant-docs")
        (folder / "restart.md").write_text(
            "# Restart the worker\n\nTo restart the worker, run `python -m ops.worker restart`"
            " and watch the queue drain. The worker finishes its chats before it stops.\n"
        )
        seed_documents(
            stack.base_url, stack.admin_token, folder, load_settings().ALLOWED_EXTENSIONS
        )
        yield TenantService(stack, EmulatorControl(stack.flow_url), key_a, key_b)
    finally:
        stack.stop()
