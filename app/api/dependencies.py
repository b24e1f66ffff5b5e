"""Typed dependencies shared by the routers."""

from __future__ import annotations

import secrets
from typing import Annotated

import redis
from fastapi import Depends, Header, HTTPException, Request, status
from rq import Queue

from app.contracts import SECRET_PLACEHOLDER
from app.settings import Settings


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


def get_queue(request: Request) -> Queue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
QueueDep = Annotated[Queue, Depends(get_queue)]


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def require_admin(
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


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    keys = [k.get_secret_value() for k in settings.API_KEYS]
    if not keys:
        return
    given = x_api_key or _bearer(authorization)
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "an API key is required: send 'X-API-Key: <key>'"
        )
    if not any(secrets.compare_digest(given.encode(), k.encode()) for k in keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the API key is not valid")


AdminDep = Depends(require_admin)
ApiKeyDep = Depends(require_api_key)
