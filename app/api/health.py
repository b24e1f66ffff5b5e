"""Liveness (no I/O), readiness (Redis, Chroma, workers, Flow) and the maintenance status."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import redis
from fastapi import APIRouter, Header, Request, Response
from rq import Worker

from app.api.dependencies import AdminDep, QueueDep, RedisDep, SettingsDep, is_admin
from app.api.models import Check, Readiness, StatusUpdate
from app.api.openapi import AUTH_RESPONSES, REDIS_RESPONSES
from app.contracts import ALIVE_PREFIX, PING_PATH, READY_PATH, STATUS_PATH
from app.core.maintenance import MaintenanceTracker, Status

router = APIRouter(tags=["health"])

FLOW_CHECK_TTL = 30.0  # seconds a Flow token check result is reused (probes come every 10 s)
READY_CHECK_TTL = 1.0  # seconds the dependency checks are reused: at most one round a second
FLOW_CHECK_TIMEOUT = 2.0  # the readiness probe's own timeout is 5 s


@router.get(PING_PATH)
async def ping() -> dict[str, str]:
    """Liveness: runs on the event loop itself, not in the thread pool that blocking routes
    (Redis, Chroma) share, so a hung dependency cannot starve it."""
    return {"status": "ok"}


def _check_redis(connection: redis.Redis) -> Check:
    try:
        connection.ping()
    except redis.RedisError as exc:
        return Check(ok=False, detail=f"Redis unreachable: {exc.__class__.__name__}")
    return Check(ok=True, detail="Redis answers")


def _check_workers(connection: redis.Redis, queue) -> Check:
    """Workers registered on the queue that beat within the last seconds: a SIGKILLed worker
    stays registered in RQ for minutes, but its alive key expires in 15 s."""
    try:
        names = [w.name for w in Worker.all(queue=queue)]
        alive = connection.exists(*[ALIVE_PREFIX + n for n in names]) if names else 0
        count = int(alive)
    except redis.RedisError:
        return Check(ok=False, detail="unknown: Redis unreachable", count=0)
    if count == 0:
        return Check(ok=False, detail=f"no worker listens on queue {queue.name}", count=0)
    return Check(ok=True, detail=f"{count} worker(s) on queue {queue.name}", count=count)


def _check_chroma(request: Request) -> Check:
    probe = request.app.state.chroma_probe
    try:
        detail = probe()
    except Exception as exc:
        return Check(ok=False, detail=f"Chroma unreachable: {exc.__class__.__name__}: {exc}"[:200])
    return Check(ok=True, detail=detail)


def _check_flow(request: Request) -> Check:
    """A token exchange (2 s timeout, no retries), cached for 30 s; while one request refreshes
    it, the others get the last result instead of queueing behind a slow Flow."""
    state = request.app.state
    cached: tuple[float, Check] | None = getattr(state, "flow_check", None)
    if cached is not None and time.monotonic() - cached[0] < FLOW_CHECK_TTL:
        return cached[1]
    lock: threading.Lock = state.flow_check_lock
    if not lock.acquire(blocking=False):
        return cached[1] if cached else Check(ok=False, detail="Flow check in progress")
    try:
        state.flow_client.check()
        result = Check(ok=True, detail="Flow issued a token")
    except Exception as exc:
        reason = getattr(exc, "reason", exc.__class__.__name__)
        result = Check(ok=False, detail=f"Flow token exchange failed: {reason}"[:300])
    try:
        state.flow_check = (time.monotonic(), result)
    finally:
        lock.release()
    return result


Authorization = Annotated[str | None, Header()]


@dataclass
class ReadinessCache:
    """The last round of dependency checks, reused for ``READY_CHECK_TTL``: whatever the rate of
    readiness requests (the route is public), Redis, Chroma and the worker registry see at most
    one round of checks a second. One request refreshes it; meanwhile the others get the last
    round (or, before the first round, wait for it) instead of starting their own."""

    ttl: float = READY_CHECK_TTL
    clock: Callable[[], float] = time.monotonic
    rounds: int = 0  # dependency rounds run (what the tests count)
    _last: tuple[float, dict[str, Check]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def checks(self, run: Callable[[], dict[str, Check]]) -> dict[str, Check]:
        last = self._last
        if last is not None and self.clock() - last[0] < self.ttl:
            return last[1]
        if not self._lock.acquire(blocking=last is None):
            return last[1]  # type: ignore[index]  # another request is refreshing it
        try:
            last = self._last  # refreshed while this request waited for the lock
            if last is not None and self.clock() - last[0] < self.ttl:
                return last[1]
            result = run()
            self.rounds += 1
            self._last = (self.clock(), result)
            return result
        finally:
            self._lock.release()


@router.get(
    READY_PATH,
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "Redis, Chroma or the workers missing"}},
)
def ready(
    request: Request,
    response: Response,
    connection: RedisDep,
    queue: QueueDep,
    settings: SettingsDep,
    authorization: Authorization = None,
):
    """503 when Redis, Chroma or the workers are missing; Flow trouble only degrades.
    Each check's detail (internal URLs, error text) is shown to the admin token only."""

    def run() -> dict[str, Check]:
        return {
            "redis": _check_redis(connection),
            "chroma": _check_chroma(request),
            "workers": _check_workers(connection, queue),
            "flow": _check_flow(request),
        }

    cache: ReadinessCache = request.app.state.readiness
    checks = cache.checks(run)
    if not is_admin(settings, authorization):
        checks = {name: Check(ok=check.ok) for name, check in checks.items()}
    if not all(checks[name].ok for name in ("redis", "chroma", "workers")):
        response.status_code = 503
        return Readiness(status="not_ready", checks=checks)
    return Readiness(status="ready" if checks["flow"].ok else "degraded", checks=checks)


@router.get(STATUS_PATH, response_model=Status, response_model_exclude_unset=True)
def get_status(
    connection: RedisDep, settings: SettingsDep, authorization: Authorization = None
) -> Status:
    """Maintenance on or off and a fixed reason; Flow's last error only for the admin token."""
    try:
        status = MaintenanceTracker(connection, settings.MAINTENANCE_AFTER_FAILURES).status()
    except redis.RedisError:
        return Status(maintenance=True, reason="the service cannot reach its job queue (Redis)")
    if status.detail is not None and is_admin(settings, authorization):
        return status
    return Status(maintenance=status.maintenance, reason=status.reason)  # no `detail` key


@router.put(
    STATUS_PATH,
    response_model=Status,
    response_model_exclude_unset=True,
    dependencies=[AdminDep],
    responses={**AUTH_RESPONSES, **REDIS_RESPONSES},
)
def set_status(body: StatusUpdate, connection: RedisDep, settings: SettingsDep) -> Status:
    tracker = MaintenanceTracker(connection, settings.MAINTENANCE_AFTER_FAILURES)
    tracker.set_operator(body.maintenance, body.reason)
    return tracker.status()
