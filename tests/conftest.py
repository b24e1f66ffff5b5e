"""Fixtures that start real servers on free loopback ports and clean up after themselves.

- ``redis_server``: Debian's redis-server (session-wide); ``redis_url`` gives each test a clean db.
- ``chroma_server``: ``chroma run`` on a temporary directory (session-wide).
- ``live_service``: the whole service started exactly as ``make run`` starts it
  (:class:`app.local.stack.LocalStack`), with ``docs/`` ingested.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from app.core.settings import REPO_ROOT
from app.local.stack import LocalStack, Ports, free_port, wait_until


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


_db_counter = iter(range(1, 16))


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A flushed database of the session's redis-server for one test."""
    url = f"{redis_server}/{next(_db_counter, 15)}"
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
        self.stack.stop_workers()
        client = redis.Redis.from_url(self.redis_url)
        from rq import Worker

        for worker in Worker.all(connection=client):  # a killed pool leaves its registrations
            worker.register_death()
        client.close()

    def start_workers(self) -> None:
        self.stack.start_workers()


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """The whole service as `make run` starts it, with docs/ ingested. Shared by the session:
    tests that break something (Flow faults, stopped workers) must put it back."""
    from app.core.settings import load_settings
    from app.local.run import seed_documents

    root = tmp_path_factory.mktemp("service")
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=2,
        env_overrides={
            "FLOW_MAX_RETRIES": "2",
            "MAINTENANCE_AFTER_FAILURES": "2",
            "INGEST_RETRY_INTERVALS": "1,1",  # 3 attempts, 1 s apart (tests kill and restart)
            "RATE_LIMIT_PER_MINUTE": "100000",
            "FLOW_TOKENS_PER_DAY": "100000000",
        },
    )
    stack.start()
    try:
        seed_documents(
            stack.base_url,
            stack.admin_token,
            REPO_ROOT / "docs",
            load_settings().ALLOWED_EXTENSIONS,
        )
        yield LiveService(stack=stack, emulator=EmulatorControl(stack.flow_url))
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A service of its own (one worker, docs/ ingested) for the API fuzzer, which deletes
    documents, starts rebuilds and flips the maintenance flag: it must not share live_service."""
    from app.core.settings import load_settings
    from app.local.run import seed_documents

    stack = LocalStack(
        root=tmp_path_factory.mktemp("fuzzed"),
        ports=Ports.free(),
        workers=1,
        env_overrides={"RATE_LIMIT_PER_MINUTE": "100000", "FLOW_TOKENS_PER_DAY": "100000000"},
    )
    stack.start()
    try:
        seed_documents(
            stack.base_url,
            stack.admin_token,
            REPO_ROOT / "docs",
            load_settings().ALLOWED_EXTENSIONS,
        )
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
