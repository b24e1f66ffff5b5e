"""app.core.redis_clients: every client authenticates, has timeouts and a bounded pool."""

from __future__ import annotations

import pytest
import redis

from app.core.redis_clients import async_redis_client, redis_client
from app.core.settings import load_settings


def test_sync_client_has_timeouts_and_a_bounded_pool(redis_url: str) -> None:
    settings = load_settings(
        REDIS_URL=redis_url, REDIS_MAX_CONNECTIONS=2, REDIS_SOCKET_TIMEOUT_SECONDS=3
    )
    client = redis_client(settings)
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 2
    assert pool.connection_kwargs["socket_timeout"] == 3
    assert pool.connection_kwargs["socket_connect_timeout"] == 2.0
    held = [pool.get_connection() for _ in range(2)]
    pool.timeout = 0.1  # the pool is exhausted: the next caller fails instead of growing it
    with pytest.raises(redis.ConnectionError):
        pool.get_connection()
    for connection in held:
        pool.release(connection)
    assert client.ping()


def test_password_is_applied_to_sync_and_async_clients(redis_url: str) -> None:
    settings = load_settings(REDIS_URL=redis_url, REDIS_PASSWORD="s3cret")
    assert redis_client(settings).connection_pool.connection_kwargs["password"] == "s3cret"
    client = async_redis_client(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "s3cret" and kwargs["socket_timeout"] == 5.0
    assert client.connection_pool.max_connections == settings.REDIS_MAX_CONNECTIONS
    # never connected, so nothing to close (asyncio.run here would unset the main thread's
    # event loop for later tests that rely on asyncio.get_event_loop)


def test_the_chroma_http_client_gets_a_timeout(chroma_server: str) -> None:
    from app.rag.vectorstore import make_client

    settings = load_settings(CHROMA_URL=chroma_server, CHROMA_TIMEOUT_SECONDS=7)
    client = make_client(settings)
    timeout = client._server._session.timeout
    assert timeout.read == 7 and timeout.connect == 2.0
    assert client.heartbeat()
