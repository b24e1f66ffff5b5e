"""Typed dependencies shared by the routers.

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its
thread pool, and the hand-off to a thread and back cost more CPU than the work itself (several
per request). Those that call Redis (:func:`require_chat_quota`) stay plain functions, so a slow
Redis never stalls the event loop.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import redis
from fastapi import Depends, Header, HTTPException, Request, status
from rq import Queue

from app.access.keys import ANONYMOUS, KeyCheck, KeyRing
from app.access.quotas import Quotas
from app.contracts import SECRET_PLACEHOLDER
from app.core.settings import Settings
from app.observability.metrics import MetricsRecorder


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


async def get_queue(request: Request) -> Queue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
QueueDep = Annotated[Queue, Depends(get_queue)]


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def is_admin(settings: Settings, authorization: str | None) -> bool:
    """True when ``authorization`` carries the admin token (for routes that show more to it)."""
    token = _bearer(authorization)
    expected = settings.ADMIN_TOKEN.get_secret_value()
    if token is None or not expected or expected == SECRET_PLACEHOLDER:
        return False
    return secrets.compare_digest(token.encode(), expected.encode())


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    token = _bearer(authorization)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this route needs the admin token: send 'Authorization: Bearer <ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.ADMIN_TOKEN.get_secret_value()
    if not expected or expected == SECRET_PLACEHOLDER:  # the secret manager's initial value
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "admin routes are disabled: ADMIN_TOKEN is not set"
        )
    if not secrets.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin token is not valid")


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The calling key's ``key_id`` (``anonymous`` when ALLOW_ANONYMOUS_CHAT lets a keyless
    request in); 401 without a key, 403 with a key that is not (or no longer) valid."""
    ring: KeyRing = request.app.state.keyring
    given = x_api_key or _bearer(authorization)
    outcome, key_id = ring.check(given)
    if outcome == KeyCheck.VALID and key_id is not None:
        return key_id
    if settings.ALLOW_ANONYMOUS_CHAT and (outcome == KeyCheck.MISSING or not ring.keys()):
        return ANONYMOUS
    if outcome == KeyCheck.MISSING:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise HTTPException(status.HTTP_403_FORBIDDEN, "the API key is not valid")


KeyIdDep = Annotated[str, Depends(require_api_key)]


def require_chat_quota(request: Request, key_id: KeyIdDep) -> str:
    """Authenticate, then count one chat request against the key's limits (requests per minute,
    Flow tokens per day): 429 with ``Retry-After`` and the reason when a limit is reached.
    Every route that queues a chat depends on this; it returns the key_id to put on the job."""
    quotas: Quotas = request.app.state.quotas
    refusal = quotas.admit(key_id)
    if refusal is not None:
        MetricsRecorder(request.app.state.redis).rate_limited(refusal.reason)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            refusal.detail,
            headers={"Retry-After": str(refusal.retry_after)},
        )
    return key_id


ChatKeyDep = Annotated[str, Depends(require_chat_quota)]
AdminDep = Depends(require_admin)
ApiKeyDep = Depends(require_api_key)
