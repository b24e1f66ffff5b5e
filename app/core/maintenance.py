"""Maintenance state for the front end's banner (``GET /api/status``).

Workers count consecutive Flow failures in Redis; after ``MAINTENANCE_AFTER_FAILURES`` in a row
the service reports maintenance (the runbook's "switch frontend to maintenance banner"), and the
next successful Flow call clears it. An operator can also set it (``PUT /api/status``); an
operator's setting is only cleared by an operator.
"""

from __future__ import annotations

import json

import redis
from pydantic import BaseModel

FAILURES_KEY = "flowchat:flow:consecutive_failures"
LAST_ERROR_KEY = "flowchat:flow:last_error"
OPERATOR_KEY = "flowchat:maintenance:operator"


class Status(BaseModel):
    maintenance: bool
    reason: str | None = None  # a fixed sentence (or the operator's own words): safe to show
    detail: str | None = None  # Flow's last error: only for the admin token (GET /api/status)


class MaintenanceTracker:
    def __init__(self, connection: redis.Redis, threshold: int) -> None:
        self.redis = connection
        self.threshold = threshold

    def flow_failed(self, reason: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.incr(FAILURES_KEY)
            pipe.set(LAST_ERROR_KEY, reason[:500])
            pipe.execute()

    def flow_succeeded(self) -> None:
        self.redis.delete(FAILURES_KEY, LAST_ERROR_KEY)

    def set_operator(self, maintenance: bool, reason: str | None) -> None:
        if maintenance:
            self.redis.set(OPERATOR_KEY, json.dumps({"reason": reason or "set by an operator"}))
        else:
            self.redis.delete(OPERATOR_KEY)

    def status(self) -> Status:
        operator, failures, last_error = self.redis.mget(OPERATOR_KEY, FAILURES_KEY, LAST_ERROR_KEY)
        if operator:
            return Status(maintenance=True, reason=json.loads(operator)["reason"])  # no detail
        if failures and int(failures) >= self.threshold:
            return Status(
                maintenance=True,
                reason=f"the Flow LLM gateway failed {int(failures)} times in a row",
                detail=last_error.decode() if last_error else None,
            )
        return Status(maintenance=False, reason=None)
