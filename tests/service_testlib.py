"""Helpers for tests that drive a running service over HTTP (imported by basename, like the
other ``*_testlib`` modules): waits on conditions with deadlines a busy machine does not reach."""

from __future__ import annotations

import time

import httpx

ANSWER_DEADLINE = 180.0  # seconds a test waits for a chat to end: a limit, not a measure


def wait_for_answer(client: httpx.Client, job_id: str, deadline: float = ANSWER_DEADLINE) -> dict:
    """GET /api/chat/{id} with the longest wait the API allows, again and again, until the chat
    has ended (finished or failed; or the id is unknown) or ``deadline`` seconds have passed: a
    busy machine makes a chat slower, never different. Returns the last view read."""
    end = time.monotonic() + deadline
    while True:
        view = client.get(f"/api/chat/{job_id}", params={"wait": 30}).json()
        if view.get("status") not in ("queued", "started") or time.monotonic() > end:
            return view
