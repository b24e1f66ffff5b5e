"""Every Redis client of the service, built one way: the password, timeouts and a bounded pool.

The API (sync and async), the workers, the per-key limits and the ops commands all connect
through these functions, so ``REDIS_PASSWORD`` and the timeouts apply everywhere. Jobs are
written with RQ's JSON serializer (:data:`JOB_SERIALIZER`): a job's arguments are data, never a
pickle, so write access to Redis does not let anyone run code through a deserializer (the
workers also run only the service's own job functions, see ``app.worker``).
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import Queue
from rq.serializers import JSONSerializer

from app.core.settings import Settings

JOB_SERIALIZER = JSONSerializer
CONNECT_TIMEOUT_SECONDS = 2.0
POOL_WAIT_SECONDS = 5.0  # a request waits this long for a free pooled connection, then fails
# After a Redis restart every pooled connection is dead: a connection idle this long is PINGed
# before use, and a command that meets a dropped connection is retried on a new one (twice,
# 50-500 ms apart). Timeouts are not retried (a BLPOP that timed out must not run again).
HEALTH_CHECK_SECONDS = 10
RECONNECT_RETRIES = 2


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=0.5, base=0.05)


def _password(settings: Settings) -> str | None:
    return settings.REDIS_PASSWORD.get_secret_value() or None


def redis_client(settings: Settings, *, socket_timeout: float | None = None) -> redis.Redis:
    """A synchronous client (API routes, workers, ops commands) with a bounded, blocking pool."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        password=_password(settings),
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout or settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(_backoff(), RECONNECT_RETRIES, supported_errors=(redis.ConnectionError,)),
    )
    return redis.Redis(connection_pool=pool)


def async_redis_client(settings: Settings) -> aioredis.Redis:
    """The API's asyncio client (waiting for answers): bounded pool, timeouts on every socket.
    The socket timeout bounds the longest BLPOP the API issues
    (:data:`app.chat.jobs.DONE_WAIT_SECONDS`, shortened to fit under it)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        password=_password(settings),
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=AsyncRetry(_backoff(), RECONNECT_RETRIES, supported_errors=(redis.ConnectionError,)),
    )
    return aioredis.Redis(connection_pool=pool)


REDIS_FULL = (
    "the job queue (Redis) is full (maxmemory reached); nothing was queued: retry once older "
    "answers expire"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis at ``maxmemory`` with ``noeviction`` refuses writes with ``OOM``; inside a
    MULTI (RQ's enqueue) it surfaces as ``EXECABORT`` naming the OOM."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM" in str(exc)


def job_queue(name: str, connection: redis.Redis) -> Queue:
    """An RQ queue that writes and reads jobs as JSON."""
    return Queue(name, connection=connection, serializer=JOB_SERIALIZER)
