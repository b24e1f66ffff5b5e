"""Closed by default: every route's protection against a table, API keys from the environment
and from a key file re-read at request time, per-key limits (429 + Retry-After + metric), and
the refusal to start without a key source. In process, against a real Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.access.keys import key_id
from app.api.main import create_app
from app.contracts import METRIC_RATE_LIMITED
from app.core.settings import REPO_ROOT, load_settings

ADMIN = "admin-secret"
KEY = "key-one"

# (method, path) -> who may call it: "none" (anyone), "key" (an API key), "admin" (the token).
# A route added to the API without an entry here fails test_every_route_is_in_the_table.
PROTECTION: dict[tuple[str, str], str] = {
    ("GET", "/api/health/ping"): "none",
    ("GET", "/api/health/ready"): "none",  # details only with the admin token
    ("GET", "/api/status"): "none",  # Flow's last error only with the admin token
    ("PUT", "/api/status"): "admin",
    ("POST", "/api/chat"): "key",
    ("GET", "/api/chat/{job_id}"): "key",
    ("GET", "/api/chat/{job_id}/stream"): "key",
    ("POST", "/api/chat/{job_id}/feedback"): "key",
    ("GET", "/api/documents/{document_id}/passages/{n}"): "key",  # cited passages
    ("GET", "/api/documents/{document_id}/file"): "admin",  # original files
    ("POST", "/api/documents"): "admin",
    ("GET", "/api/documents"): "admin",
    ("DELETE", "/api/documents/{document_id}"): "admin",
    ("POST", "/api/documents/{document_id}/reprocess"): "admin",
    ("POST", "/api/documents/ingest"): "admin",
    ("GET", "/api/documents/ingest/{job_id}"): "admin",
    ("POST", "/v1/chat/completions"): "key",
    ("GET", "/v1/models"): "key",
    ("GET", "/"): "none",  # the chat page (it asks for a key when the API answers 401)
}
# served by the app but not part of its schema (Prometheus scrapes the Service; the Ingress
# does not route them)
OUTSIDE_SCHEMA = {("GET", "/metrics"), ("GET", "/openapi.json")}


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    settings = load_settings(
        REDIS_URL=redis_url, API_KEYS=KEY, ADMIN_TOKEN=ADMIN, RATE_LIMIT_PER_MINUTE=3
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = path.replace("{job_id}", "nope").replace("{document_id}", "nope").replace("{n}", "1")
    body = {} if method in ("POST", "PUT") else None
    return client.request(method, url, json=body, headers=headers).status_code


def test_every_route_is_in_the_table(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert routes == set(PROTECTION), "add the new route to PROTECTION with its protection"


@pytest.mark.parametrize(("route", "needs"), sorted(PROTECTION.items()))
def test_each_route_is_protected_as_the_table_says(
    client: TestClient, route: tuple[str, str], needs: str
) -> None:
    method, path = route
    anonymous = _call(client, method, path, {})
    with_key = _call(client, method, path, {"X-API-Key": KEY})
    as_admin = _call(client, method, path, {"Authorization": f"Bearer {ADMIN}"})
    if needs == "none":
        assert anonymous not in (401, 403)
    elif needs == "key":
        assert anonymous == 401
        assert with_key not in (401, 403)
    else:
        assert anonymous == 401
        assert with_key == 401  # an API key is not the admin token
        assert as_admin not in (401, 403)


@pytest.mark.parametrize(("method", "path"), sorted(OUTSIDE_SCHEMA))
def test_routes_outside_the_schema_are_served(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 200


def test_interactive_docs_are_off_unless_enabled(redis_url: str) -> None:
    settings = load_settings(REDIS_URL=redis_url, API_KEYS=KEY)
    with TestClient(create_app(settings)) as closed:
        assert closed.get("/docs").status_code == 404
        assert closed.get("/redoc").status_code == 404
        assert closed.get("/openapi.json").status_code == 200  # clients and fuzzers read it
    enabled = load_settings(REDIS_URL=redis_url, API_KEYS=KEY, API_DOCS_ENABLED=True)
    with TestClient(create_app(enabled)) as opened:
        assert opened.get("/docs").status_code == 200


def test_401_and_403_say_why(client: TestClient) -> None:
    missing = client.post("/api/chat", json={"message": "hi"})
    assert missing.status_code == 401
    assert "API key is required" in missing.json()["detail"]
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.post("/api/chat", json={"message": "hi"}, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "the API key is not valid"}
    bearer = client.post(
        "/api/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bearer.status_code == 202


def test_readiness_details_need_the_admin_token(client: TestClient) -> None:
    public = client.get("/api/health/ready").json()
    assert all(set(check) == {"ok"} for check in public["checks"].values()), public
    admin = client.get("/api/health/ready", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert admin["checks"]["redis"]["detail"] == "Redis answers"


def test_key_file_is_reread_so_keys_are_added_and_revoked_without_restart(
    redis_url: str, tmp_path: Path
) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# staging keys\nfirst-key\n\n")
    settings = load_settings(REDIS_URL=redis_url, API_KEYS_FILE=str(keys), API_KEYS_CACHE_SECONDS=0)
    with TestClient(create_app(settings)) as client:

        def post(key: str) -> int:
            return client.post(
                "/api/chat", json={"message": "hi"}, headers={"X-API-Key": key}
            ).status_code

        assert post("first-key") == 202
        assert post("second-key") == 403
        keys.write_text("second-key\n")  # rotate: add the new key, revoke the old one
        assert post("second-key") == 202
        assert post("first-key") == 403
        keys.unlink()  # a missing file means no keys from it: closed, not open
        assert post("second-key") == 403
        assert client.post("/api/chat", json={"message": "hi"}).status_code == 401


def test_per_minute_limit_answers_429_with_retry_after_and_counts_the_refusal(
    client: TestClient, redis_url: str
) -> None:
    headers = {"X-API-Key": KEY}
    codes = [
        client.post("/api/chat", json={"message": f"q{i}"}, headers=headers).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 202, 429]
    refused = client.post("/api/chat", json={"message": "again"}, headers=headers)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "more than 3 chat requests in a minute" in refused.json()["detail"]
    metrics = client.get("/metrics").text
    name = METRIC_RATE_LIMITED
    assert f'{name}{{reason="rate"}} 2.0' in metrics
    assert f'{name}{{reason="tokens"}} 0.0' in metrics
    # the counters are per key, named by key_id, never by the key itself
    connection = redis.Redis.from_url(redis_url)
    names = [k.decode() for k in connection.keys("flowchat:limits*")]
    assert any(key_id(KEY) in k for k in names) and not any(KEY in k for k in names)


def test_daily_token_budget_refuses_once_spent(redis_url: str) -> None:
    from app.access.quotas import Quotas

    budget = 100_000
    settings = load_settings(REDIS_URL=redis_url, API_KEYS=KEY, FLOW_TOKENS_PER_DAY=budget)
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": KEY}
        assert client.post("/api/chat", json={"message": "q"}, headers=headers).status_code == 202
        # the worker settles with Flow's usage.total_tokens: here, all but 100 tokens
        quotas = Quotas(redis.Redis.from_url(redis_url), settings)
        quotas.charge_tokens(key_id(KEY), budget - 100 - quotas.tokens_used(key_id(KEY)))
        refused = client.post("/api/chat", json={"message": "q"}, headers=headers)
        assert refused.status_code == 429
        assert f"has 100 of its daily {budget} Flow tokens left" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 3600  # the day's window, not a minute
        metrics = client.get("/metrics").text
        assert f'{METRIC_RATE_LIMITED}{{reason="tokens"}} 1.0' in metrics
        other = load_settings(
            REDIS_URL=redis_url, API_KEYS=f"{KEY},other", FLOW_TOKENS_PER_DAY=budget
        )
    with TestClient(create_app(other)) as client:  # another key keeps its own budget
        ok = client.post("/api/chat", json={"message": "q"}, headers={"X-API-Key": "other"})
        assert ok.status_code == 202


def test_anonymous_chat_is_only_allowed_explicitly(redis_url: str) -> None:
    settings = load_settings(REDIS_URL=redis_url, ALLOW_ANONYMOUS_CHAT=True)
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/chat", json={"message": "hi"}).status_code == 202
    closed = load_settings(REDIS_URL=redis_url)
    with TestClient(create_app(closed)) as client:
        assert client.post("/api/chat", json={"message": "hi"}).status_code == 401


def _start_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import app.api.main as m; m.app"
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_api_refuses_to_start_without_keys_unless_anonymous_is_explicit() -> None:
    refused = _start_api({})
    assert refused.returncode != 0
    assert "no API keys: set API_KEYS or API_KEYS_FILE" in refused.stderr
    assert _start_api({"ALLOW_ANONYMOUS_CHAT": "true"}).returncode == 0
    assert _start_api({"API_KEYS": "k1"}).returncode == 0
