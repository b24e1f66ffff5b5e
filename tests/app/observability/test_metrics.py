from __future__ import annotations

from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from app.contracts import (
    METRIC_CHAT_LATENCY,
    METRIC_EMPTY_ANSWERS,
    METRIC_FLOW_REQUESTS,
    METRIC_RQ_JOBS,
    METRIC_RQ_WORKERS,
    METRIC_VECTOR_STORE_BYTES,
    QUEUE_NAME,
)
from app.observability.metrics import FlowchatCollector, MetricsRecorder


def _scrape(connection: redis.Redis, path: Path | None) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(FlowchatCollector(connection, QUEUE_NAME, path))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_observations_from_several_recorders_add_up(redis_url: str, tmp_path: Path) -> None:
    first = MetricsRecorder(redis.Redis.from_url(redis_url))  # two worker processes
    second = MetricsRecorder(redis.Redis.from_url(redis_url))
    first.observe_chat_latency(0.4)
    second.observe_chat_latency(12.0)
    second.observe_chat_latency(80.0)
    first.flow_request("200", 0.3)
    second.flow_request("500", 0.1)
    second.flow_request("500", 0.2)
    first.chat_answer("empty")
    (tmp_path / "store.bin").write_bytes(b"x" * 1234)

    samples = _scrape(redis.Redis.from_url(redis_url), tmp_path)
    bucket = f"{METRIC_CHAT_LATENCY}_bucket"
    assert samples[(bucket, (("le", "0.5"),))] == 1
    assert samples[(bucket, (("le", "10.0"),))] == 1
    assert samples[(bucket, (("le", "15.0"),))] == 2
    assert samples[(bucket, (("le", "+Inf"),))] == 3
    assert samples[(f"{METRIC_CHAT_LATENCY}_count", ())] == 3
    assert samples[(f"{METRIC_CHAT_LATENCY}_sum", ())] == 92.4
    assert samples[(METRIC_FLOW_REQUESTS, (("status", "500"),))] == 2
    assert samples[(METRIC_FLOW_REQUESTS, (("status", "200"),))] == 1
    assert samples[(METRIC_EMPTY_ANSWERS, ())] == 1
    assert samples[(METRIC_VECTOR_STORE_BYTES, ())] == 1234


def test_queue_gauges_follow_the_real_queue(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    for _ in range(3):
        queue.enqueue("builtins.print", "x")
    samples = _scrape(connection, None)
    assert samples[(METRIC_RQ_JOBS, (("queue", QUEUE_NAME), ("status", "queued")))] == 3
    assert samples[(METRIC_RQ_JOBS, (("queue", QUEUE_NAME), ("status", "failed")))] == 0
    assert samples[(METRIC_RQ_WORKERS, (("queue", QUEUE_NAME),))] == 0
    assert not any(name == METRIC_VECTOR_STORE_BYTES for name, _ in samples)


def test_unreachable_redis_leaves_out_queue_metrics_but_still_scrapes(tmp_path: Path) -> None:
    from app.local.stack import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    samples = _scrape(dead, tmp_path)
    assert not any(name == METRIC_RQ_JOBS for name, _ in samples)  # absent() alerts on this
    assert samples[(METRIC_VECTOR_STORE_BYTES, ())] == 0


def test_redis_memory_gauges_and_refusals_by_reason(redis_url: str) -> None:
    from app.contracts import (
        METRIC_RATE_LIMITED,
        METRIC_REDIS_MEMORY_MAX_BYTES,
        METRIC_REDIS_MEMORY_USED_BYTES,
    )

    connection = redis.Redis.from_url(redis_url)
    recorder = MetricsRecorder(connection)
    recorder.rate_limited("rate")
    recorder.rate_limited("rate")
    recorder.rate_limited("tokens")
    samples = _scrape(connection, None)
    info = connection.info("memory")
    assert samples[(METRIC_REDIS_MEMORY_USED_BYTES, ())] > 0
    assert samples[(METRIC_REDIS_MEMORY_MAX_BYTES, ())] == info["maxmemory"]
    rate_limited = METRIC_RATE_LIMITED
    assert samples[(rate_limited, (("reason", "rate"),))] == 2
    assert samples[(rate_limited, (("reason", "tokens"),))] == 1
    assert samples[(rate_limited, (("reason", "queue_full"),))] == 0


def test_flow_tokens_add_up_per_kind_and_key(redis_url: str) -> None:
    from app.contracts import METRIC_FLOW_TOKENS

    first = MetricsRecorder(redis.Redis.from_url(redis_url))
    second = MetricsRecorder(redis.Redis.from_url(redis_url))
    first.flow_tokens("k-aaa", 120, 30)
    second.flow_tokens("k-aaa", 80, 10)
    second.flow_tokens("anonymous", 5, 1)
    samples = _scrape(redis.Redis.from_url(redis_url), None)
    tokens = {labels: v for (name, labels), v in samples.items() if name == METRIC_FLOW_TOKENS}
    assert tokens == {
        (("key", "k-aaa"), ("kind", "prompt")): 200.0,
        (("key", "k-aaa"), ("kind", "completion")): 40.0,
        (("key", "anonymous"), ("kind", "prompt")): 5.0,
        (("key", "anonymous"), ("kind", "completion")): 1.0,
    }


def test_a_batch_sends_every_recorders_observations_at_its_end(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    shared = MetricsRecorder(redis.Redis.from_url(redis_url))  # e.g. the Flow client's recorder
    with MetricsRecorder(connection).batch():
        shared.flow_request("200", 0.3)
        shared.chat_answer("answered")
        shared.observe_chat_latency(1.2)
        assert connection.keys("flowchat:metrics:*") == []  # nothing sent yet
    samples = _scrape(connection, None)
    assert samples[(METRIC_FLOW_REQUESTS, (("status", "200"),))] == 1
    assert samples[(f"{METRIC_CHAT_LATENCY}_count", ())] == 1
    # outside a batch every observation goes out at once
    shared.chat_answer("empty")
    assert _scrape(connection, None)[(METRIC_EMPTY_ANSWERS, ())] == 1


def test_a_batch_that_cannot_reach_redis_does_not_fail_the_job() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from app.local.stack import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with MetricsRecorder(dead).batch():
        MetricsRecorder(dead).chat_answer("answered")
    # and the thread is out of the batch: a direct write reaches Redis (and fails here)
    try:
        MetricsRecorder(dead).chat_answer("answered")
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("a write outside the batch should have gone to Redis")
