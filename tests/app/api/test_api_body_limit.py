"""Body limits on every route, counted while the body is read (chunked bodies included), and
the bounds of /v1 `messages`. In process against a real Redis; one over real HTTP (uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.main import create_app
from app.api.openai_compat import (
    MAX_MESSAGE_CONTENT_CHARS,
    MAX_MESSAGES,
    MAX_TOTAL_CONTENT_CHARS,
    OpenAIRequest,
)
from app.contracts import QUEUE_KEY
from app.core.settings import load_settings

ADMIN = "admin-secret"


@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        REDIS_URL=redis_url,
        ALLOW_ANONYMOUS_CHAT=True,
        ADMIN_TOKEN=ADMIN,
        MAX_REQUEST_BYTES=4096,
        MAX_UPLOAD_MB=0.001,  # ~1 KB a file: 20 files + form overhead ~ 85 KB a request
        DOCUMENTS_PATH=str(tmp_path / "documents"),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    yield b'{"message": "'
    for _ in range(total // size):
        yield b"a" * size
    yield b'"}'


def test_declared_length_over_the_limit_is_refused_before_reading(
    client: TestClient, redis_url: str
) -> None:
    response = client.post("/api/chat", json={"message": "a" * 5000})
    assert response.status_code == 413
    assert response.json() == {
        "detail": "the request body is larger than 4096 bytes (MAX_REQUEST_BYTES)"
    }
    assert redis.Redis.from_url(redis_url).llen(QUEUE_KEY) == 0


def test_a_chunked_body_is_counted_while_read(client: TestClient, redis_url: str) -> None:
    response = client.post(
        "/api/chat", content=_chunks(10_000), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "MAX_REQUEST_BYTES" in response.json()["detail"]
    assert redis.Redis.from_url(redis_url).llen(QUEUE_KEY) == 0
    small = client.post(
        "/api/chat", content=_chunks(2048), headers={"content-type": "application/json"}
    )
    assert small.status_code == 202


def test_a_chunked_upload_over_the_limit_is_refused_and_nothing_is_stored(
    client: TestClient, tmp_path: Path
) -> None:
    boundary = "b0undary"

    def form() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        for _ in range(200):  # 200 KB, no Content-Length
            yield b"x" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/documents",
        content=form(),
        headers={
            "content-type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Bearer {ADMIN}",
        },
    )
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["detail"]
    stored = tmp_path / "documents"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


def test_v1_messages_are_bounded_in_count(client: TestClient) -> None:
    many = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    response = client.post("/v1/chat/completions", json={"messages": many})
    assert response.status_code == 422
    assert f"at most {MAX_MESSAGES} items" in response.json()["error"]["message"]  # OpenAI shape


def test_v1_message_size_is_bounded_so_the_total_is(client: TestClient) -> None:
    big = [{"role": "user", "content": "a" * 4001}]
    response = client.post("/v1/chat/completions", json={"messages": big})
    assert response.status_code in (413, 422)  # the body limit (4096 here) or the model
    assert MAX_TOTAL_CONTENT_CHARS == MAX_MESSAGES * MAX_MESSAGE_CONTENT_CHARS


def test_v1_text_parts_are_bounded_together() -> None:
    """A message sent as text parts (as the OpenAI SDK can) is bounded like a string one."""
    half = MAX_MESSAGE_CONTENT_CHARS // 2 + 1
    parts = [{"type": "text", "text": "a" * half}, {"type": "text", "text": "b" * half}]
    with pytest.raises(ValidationError, match="text parts hold"):
        OpenAIRequest.model_validate({"messages": [{"role": "user", "content": parts}]})
    fits = [{"type": "text", "text": "a" * (half - 1)}]
    OpenAIRequest.model_validate({"messages": [{"role": "user", "content": fits}]})


def test_a_chunked_body_over_real_http_is_refused(live_service) -> None:
    """uvicorn in front: the limit holds for a chunked body on a real socket."""
    response = httpx.post(
        f"{live_service.base_url}/api/chat",
        content=_chunks(2_000_000, size=65536),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "MAX_REQUEST_BYTES" in response.json()["detail"]


def test_a_v1_body_over_the_limit_gets_openai_s_error_shape(client: TestClient) -> None:
    """The body limit answers /v1 like the /v1 routes do, so the SDK raises its typed error."""
    big = {"messages": [{"role": "user", "content": "a" * 5000}]}
    response = client.post("/v1/chat/completions", json=big)
    assert response.status_code == 413
    error = response.json()["error"]
    assert "MAX_REQUEST_BYTES" in error["message"]
    assert error["code"] == 413
