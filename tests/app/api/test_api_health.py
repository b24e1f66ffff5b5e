"""The public surface: readiness costs its dependencies at most one round of checks a second,
whatever the request rate (counted, not timed), and /metrics on a port of its own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.health import READY_CHECK_TTL, ReadinessCache
from app.api.main import create_app
from app.core.settings import load_settings
from app.local.stack import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    settings = load_settings(REDIS_URL=redis_url, API_KEYS="key-one")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_many_readiness_requests_cost_one_round_of_checks_a_second(client: TestClient) -> None:
    clock = Clock()
    cache = ReadinessCache(clock=clock)
    client.app.state.readiness = cache
    probes = 0
    real = client.app.state.chroma_probe

    def counted() -> str:
        nonlocal probes
        probes += 1
        return real()

    client.app.state.chroma_probe = counted
    for _ in range(200):
        client.get("/api/health/ready")
    assert cache.rounds == 1 and probes == 1
    clock.now += READY_CHECK_TTL / 2
    for _ in range(50):
        client.get("/api/health/ready")
    assert cache.rounds == 1
    clock.now += READY_CHECK_TTL
    for _ in range(50):
        client.get("/api/health/ready")
    assert cache.rounds == 2 and probes == 2


def test_metrics_are_served_on_their_own_port_only(redis_url: str) -> None:
    port = free_port()
    settings = load_settings(REDIS_URL=redis_url, API_KEYS="key-one", METRICS_PORT=port)
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404  # not on the API's port
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "rq_jobs" in scraped.text
    with pytest.raises(httpx.TransportError):  # stopped with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
