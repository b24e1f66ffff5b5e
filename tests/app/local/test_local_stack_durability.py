"""Item 9 of issue 18: a 202 is durable. Ten chats acknowledged, redis-server SIGKILLed within
milliseconds of the tenth 202 and restarted on the same port and data directory by `make run`'s
supervisor (`LocalStack.supervise`): every one of the ten is answered."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from app.contracts import REDIS_APPENDFSYNC
from app.local.stack import LocalStack, Ports

CHATS = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The service as `make run` starts it, on its own (this test kills its Redis)."""
    stack = LocalStack(
        root=tmp_path_factory.mktemp("durable"),
        ports=Ports.free(),
        workers=1,
        threads=4,
        ingest_workers=0,
        env_overrides={"RATE_LIMIT_PER_MINUTE": "100000", "FLOW_TOKENS_PER_DAY": "100000000"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _aof_policy(stack: LocalStack) -> dict[str, str]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        return {**client.config_get("appendonly"), **client.config_get("appendfsync")}
    finally:
        client.close()


def _emulator_latency(stack: LocalStack, ms: int) -> None:
    httpx.post(
        f"{stack.flow_url}/_emulator/config", json={"latency_ms": ms}, timeout=5
    ).raise_for_status()


def test_ten_chats_acknowledged_right_before_a_redis_kill_are_all_answered(
    stack: LocalStack,
) -> None:
    # the Redis `make run` starts fsyncs every write before answering it
    assert _aof_policy(stack) == {"appendonly": "yes", "appendfsync": REDIS_APPENDFSYNC}
    _emulator_latency(stack, 300)  # some chats are in flight at the kill, the rest queued
    ids: list[str] = []
    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        for i in range(CHATS):
            accepted = api.post("/api/chat", json={"message": f"How do I restart worker {i}?"})
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["id"])
        redis_proc = stack.procs["redis"]
        os.kill(redis_proc.pid, signal.SIGKILL)  # within milliseconds of the tenth 202
        redis_proc.wait(10)

        deadline = time.monotonic() + 60  # polling limits, not timing assertions
        while any(p.poll() is not None for p in stack.procs.values()):
            assert time.monotonic() < deadline, "the supervisor did not bring Redis back"
            stack.supervise()
            time.sleep(0.2)
        assert _aof_policy(stack)["appendfsync"] == REDIS_APPENDFSYNC
        _emulator_latency(stack, 0)

        finished: dict[str, str] = {}
        deadline = time.monotonic() + 180
        while len(finished) < CHATS and time.monotonic() < deadline:
            stack.supervise()  # workers that lost Redis come back too
            for job_id in ids:
                if job_id in finished:
                    continue
                view = api.get(f"/api/chat/{job_id}", params={"wait": 1})
                if view.status_code == 200 and view.json()["status"] == "finished":
                    finished[job_id] = view.json()["answer"]
    assert set(finished) == set(ids), f"lost: {sorted(set(ids) - set(finished))}"
    assert all(finished.values())  # answered, not just marked done
