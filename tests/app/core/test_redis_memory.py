"""Redis at its memory limit (maxmemory + noeviction, as `make run` and the stack run it): new
chats fail with 503 and a reason, nothing queued is evicted, and chats are accepted again once
old results expire. Also: a client without the password is refused."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.contracts import QUEUE_KEY
from app.core.settings import load_settings
from app.local.stack import free_port, wait_until

PASSWORD = "test-redis-password"


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A redis-server of its own (its memory limit must not touch the session's server)."""
    port = free_port()
    config = tmp_path / "redis.conf"
    config.write_text(f"requirepass {PASSWORD}\n")
    binary = shutil.which("redis-server") or "redis-server"
    proc = subprocess.Popen(
        [binary, str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, password=PASSWORD, socket_connect_timeout=0.5)
    try:
        wait_until(lambda: bool(client.ping()), "redis-server", 20, proc)
        yield port, proc
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def test_a_client_without_the_password_is_refused(small_redis: tuple[int, subprocess.Popen]):
    port, _ = small_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).set("x", "1")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="wrong").ping()
    settings = load_settings(
        REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_PASSWORD=PASSWORD, ALLOW_ANONYMOUS_CHAT=True
    )
    with TestClient(create_app(settings)) as client:  # the service's clients authenticate
        assert client.post("/api/chat", json={"message": "hi"}).status_code == 202


def test_full_redis_refuses_new_chats_with_503_and_recovers_when_results_expire(
    small_redis: tuple[int, subprocess.Popen],
) -> None:
    port, proc = small_redis
    admin = redis.Redis(port=port, password=PASSWORD)
    settings = load_settings(
        REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_PASSWORD=PASSWORD, ALLOW_ANONYMOUS_CHAT=True
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/chat", json={"message": "queued before"}).status_code == 202
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 1_000_000)
        # stand-ins for stored answers: 5 KB each, expiring in 3 s, until Redis is full
        filler = "x" * 5000
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(10_000):
                admin.set(f"result:{i}", filler, ex=3)
        # full is a hair's breadth: a freed client buffer would let the next write in; keep it
        # full until the stand-ins expire (they free ~1 MB)
        admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) - 200_000)
        refused = client.post("/api/chat", json={"message": "one more"})
        assert refused.status_code == 503
        assert "maxmemory" in refused.json()["detail"]
        assert "Retry-After" in refused.headers
        assert client.get("/api/health/ping").status_code == 200  # the API stays up
        assert proc.poll() is None  # Redis refuses writes, it does not crash
        assert admin.llen(QUEUE_KEY) == 1  # noeviction: the queued job is still there

        deadline = time.monotonic() + 30  # a polling limit, not a timing assertion
        status = refused.status_code
        while status == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.post("/api/chat", json={"message": "after expiry"}).status_code
        assert status == 202
        assert admin.llen(QUEUE_KEY) == 2
