from __future__ import annotations

import redis

from app.core.maintenance import MaintenanceTracker


def test_maintenance_after_consecutive_failures_and_cleared_by_success(redis_url: str) -> None:
    tracker = MaintenanceTracker(redis.Redis.from_url(redis_url), threshold=3)
    tracker.flow_failed("503")
    tracker.flow_failed("503")
    assert tracker.status().maintenance is False
    tracker.flow_failed("Flow returned 503 three times")
    status = tracker.status()
    assert status.maintenance is True
    assert "3 times in a row" in (status.reason or "")
    assert "Flow returned 503" not in (status.reason or "")  # the reason is a fixed sentence
    assert "Flow returned 503" in (status.detail or "")  # the detail is for the admin token
    tracker.flow_succeeded()
    assert tracker.status().maintenance is False


def test_operator_setting_wins_until_an_operator_clears_it(redis_url: str) -> None:
    tracker = MaintenanceTracker(redis.Redis.from_url(redis_url), threshold=1)
    tracker.set_operator(True, "database migration")
    tracker.flow_succeeded()
    assert tracker.status().model_dump(exclude_unset=True) == {
        "maintenance": True,
        "reason": "database migration",
    }
    tracker.set_operator(False, None)
    assert tracker.status().maintenance is False
