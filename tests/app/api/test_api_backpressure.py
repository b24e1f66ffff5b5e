"""Backpressure and Redis trouble, in process against a real Redis with no worker running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.contracts import QUEUE_KEY
from app.core.settings import load_settings
from app.local.stack import free_port


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    settings = load_settings(
        REDIS_URL=redis_url,
        MAX_QUEUE_DEPTH=2,
        ADMIN_TOKEN="admin-secret",
        ALLOW_ANONYMOUS_CHAT=True,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_full_queue_gets_429_with_retry_after_and_keeps_what_was_queued(
    client: TestClient, redis_url: str
) -> None:
    accepted = [client.post("/api/chat", json={"message": f"question {i}"}) for i in range(2)]
    assert [r.status_code for r in accepted] == [202, 202]
    refused = client.post("/api/chat", json={"message": "one too many"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "2 of 2" in refused.json()["detail"]
    assert redis.Redis.from_url(redis_url).llen(QUEUE_KEY) == 2
    for response in accepted:  # what was accepted is still there, waiting
        assert client.get(f"/api/chat/{response.json()['id']}").json()["status"] == "queued"


def test_readiness_without_workers_is_503_and_names_the_check(client: TestClient) -> None:
    response = client.get("/api/health/ready", headers={"Authorization": "Bearer admin-secret"})
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["ok"] is True
    workers = body["checks"]["workers"]
    assert workers == {"ok": False, "detail": "no worker listens on queue flow_tasks", "count": 0}


def test_operator_can_set_maintenance_with_the_admin_token(client: TestClient) -> None:
    body = {"maintenance": True, "reason": "planned Redis upgrade"}
    assert client.put("/api/status", json=body).status_code == 401
    wrong = client.put("/api/status", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    ok = client.put("/api/status", json=body, headers={"Authorization": "Bearer admin-secret"})
    assert ok.json() == {"maintenance": True, "reason": "planned Redis upgrade"}
    assert client.get("/api/status").json()["maintenance"] is True


def test_unreachable_redis_gets_503_and_ping_still_answers() -> None:
    settings = load_settings(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", ALLOW_ANONYMOUS_CHAT=True
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health/ping").json() == {"status": "ok"}
        response = client.post("/api/chat", json={"message": "hello"})
        assert response.status_code == 503
        assert "Redis" in response.json()["detail"]
        ready = client.get("/api/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["ok"] is False


def test_api_keys_are_enforced_when_configured(redis_url: str) -> None:
    settings = load_settings(REDIS_URL=redis_url, API_KEYS="key-one,key-two")
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/chat", json={"message": "hi"}).status_code == 401

        def post(headers: dict[str, str]) -> int:
            return client.post("/api/chat", json={"message": "hi"}, headers=headers).status_code

        assert post({"X-API-Key": "bad"}) == 403
        assert post({"X-API-Key": "key-two"}) == 202
        assert post({"Authorization": "Bearer key-one"}) == 202


def test_the_secret_managers_placeholder_never_opens_admin_routes(redis_url: str) -> None:
    from app.contracts import SECRET_PLACEHOLDER

    settings = load_settings(REDIS_URL=redis_url, ADMIN_TOKEN=SECRET_PLACEHOLDER)
    with TestClient(create_app(settings)) as client:
        response = client.put(
            "/api/status",
            json={"maintenance": True},
            headers={"Authorization": f"Bearer {SECRET_PLACEHOLDER}"},
        )
        assert response.status_code == 403
        assert "ADMIN_TOKEN is not set" in response.json()["detail"]
        assert client.get("/api/status").json()["maintenance"] is False


def test_reading_a_chat_while_redis_is_down_is_503_not_500() -> None:
    settings = load_settings(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", ALLOW_ANONYMOUS_CHAT=True
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/chat/some-job-id")
        assert response.status_code == 503
        assert "Redis" in response.json()["detail"]


def test_a_hanging_flow_only_degrades_readiness(redis_url: str) -> None:
    """Flow accepts connections but never answers: the readiness check gives up after its own
    short timeout and reports Flow as failing, instead of hanging the probe."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # never accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = load_settings(
            REDIS_URL=redis_url,
            FLOW_BASE_URL=url,
            FLOW_TENANT="t",
            FLOW_AGENT="a",
            FLOW_AGENT_SECRET="s",
            ADMIN_TOKEN="admin-secret",
        )
        with TestClient(create_app(settings)) as client:
            admin = {"Authorization": "Bearer admin-secret"}
            flow = client.get("/api/health/ready", headers=admin).json()["checks"]["flow"]
    assert flow["ok"] is False
    assert "Flow token exchange failed" in flow["detail"]
    assert "timed out" in flow["detail"].lower() or "timeout" in flow["detail"].lower()
