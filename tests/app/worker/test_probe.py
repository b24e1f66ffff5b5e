"""app/worker/probe.py against a real Redis: alive keys of this host's RQ workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from rq import Queue, Worker

from app.contracts import QUEUE_NAME
from app.core.settings import get_settings
from app.local.stack import free_port
from app.worker import probe as worker_probe
from app.worker.runner import ALIVE_PREFIX


def _register(connection: redis.Redis, name: str, hostname: str, alive: bool) -> None:
    worker = Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection, name=name)
    worker.hostname = hostname
    worker.register_birth()
    if alive:
        connection.set(ALIVE_PREFIX + name, "1", ex=15)


@pytest.fixture
def connection(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
    get_settings.cache_clear()


def test_alive_workers_of_this_host_pass(connection: redis.Redis) -> None:
    _register(connection, "w1", "pod-a", alive=True)
    _register(connection, "w2", "pod-a", alive=True)
    _register(connection, "w3", "pod-b", alive=True)
    assert worker_probe.alive_workers(connection, "pod-a") == ["w1", "w2"]
    assert worker_probe.main(["--hostname", "pod-a", "--min-workers", "2"]) == 0


def test_stopped_heartbeat_fails(connection: redis.Redis, capsys: pytest.CaptureFixture) -> None:
    _register(connection, "w1", "pod-a", alive=True)
    _register(connection, "w2", "pod-a", alive=False)  # registered, heartbeat key expired
    assert worker_probe.main(["--hostname", "pod-a", "--min-workers", "2"]) == 1
    assert "1 alive worker(s) on pod-a, need 2" in capsys.readouterr().out


def test_another_pods_workers_do_not_count(connection: redis.Redis) -> None:
    _register(connection, "w3", "pod-b", alive=True)
    assert worker_probe.main(["--hostname", "pod-a"]) == 1


def test_queue_filter(connection: redis.Redis) -> None:
    _register(connection, "w1", "pod-a", alive=True)
    assert worker_probe.main(["--hostname", "pod-a", "--queue", QUEUE_NAME]) == 0
    assert worker_probe.main(["--hostname", "pod-a", "--queue", "flow_ingest"]) == 1


def test_unreachable_redis_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    try:
        assert worker_probe.main(["--hostname", "pod-a"]) == 2
    finally:
        get_settings.cache_clear()
