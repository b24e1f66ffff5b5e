"""The chat path end to end on the real service (API -> flow_tasks -> worker -> Chroma -> Flow
emulator), started the way `make run` starts it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
import redis
from rq import Worker
from rq.job import Job
from service_testlib import wait_for_answer

from app.contracts import (
    METRIC_CHAT_ANSWERS,
    METRIC_CHAT_LATENCY,
    METRIC_EMPTY_ANSWERS,
    METRIC_FLOW_REQUEST_SECONDS,
    METRIC_FLOW_REQUESTS,
    METRIC_RQ_JOBS,
    METRIC_RQ_WORKERS,
)
from app.core.redis_clients import JOB_SERIALIZER


def _admin(live_service) -> dict[str, str]:
    return {"Authorization": f"Bearer {live_service.admin_token}"}


@pytest.fixture
def api(live_service) -> httpx.Client:
    live_service.emulator.reset()
    with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
        yield client
    live_service.emulator.reset()


def ask(api: httpx.Client, message: str) -> dict:
    submitted = api.post("/api/chat", json={"message": message})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/api/chat/{job_id}"
    return wait_for_answer(api, job_id)


def test_answer_cites_the_runbook_with_sources_and_timings(api: httpx.Client) -> None:
    answer = ask(api, "How do I restart the worker?")
    assert answer["status"] == "finished", answer
    assert answer["sources"], "no sources were retrieved"
    top = answer["sources"][0]
    assert top["document"] == "runbook.md"
    assert "restart" in (top["heading"] or "").lower() or "restart" in top["text"].lower()
    assert "[1]" in answer["answer"]
    assert "restart" in answer["answer"].lower()
    timings = answer["timings"]
    assert 0 < timings["total_seconds"] >= timings["flow_seconds"]


def test_flow_failing_twice_then_succeeding_still_answers(live_service, api) -> None:
    before = live_service.emulator.stats()["chat_responses"].get("500", 0)
    live_service.emulator.configure(fail_next=2)
    answer = ask(api, "How do I rotate the Flow credentials?")
    assert answer["status"] == "finished", answer
    assert live_service.emulator.stats()["chat_responses"].get("500", 0) == before + 2


def test_flow_failing_every_time_fails_the_job_and_turns_on_maintenance(live_service, api) -> None:
    live_service.emulator.configure(error_rate=1.0)
    for _ in range(2):  # MAINTENANCE_AFTER_FAILURES=2 for the test service
        answer = ask(api, "What does the queue depth alert mean?")
        assert answer["status"] == "failed"
        # a fixed sentence: Flow's own error text stays in the worker's log
        assert answer["error"] == "the Flow LLM gateway did not answer; try again later"
    status = api.get("/api/status").json()
    assert status["maintenance"] is True
    assert status["reason"] == "the Flow LLM gateway failed 2 times in a row"
    assert "detail" not in status  # Flow's last error: for the admin token only
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    assert "500" in api.get("/api/status", headers=admin).json()["detail"]

    live_service.emulator.reset()
    assert ask(api, "How do I restart the worker?")["status"] == "finished"
    assert api.get("/api/status").json() == {"maintenance": False, "reason": None}


def test_expired_token_is_renewed_mid_run(live_service, api) -> None:
    assert ask(api, "How do I rebuild the vector store?")["status"] == "finished"
    tokens_before = live_service.emulator.stats()["token_calls"]
    live_service.emulator.configure(expire_tokens=True)
    assert ask(api, "How do I rebuild the vector store?")["status"] == "finished"
    assert live_service.emulator.stats()["token_calls"] > tokens_before


def test_a_job_whose_worker_is_killed_still_completes(live_service, api) -> None:
    connection = redis.Redis.from_url(live_service.redis_url)
    live_service.emulator.configure(latency_ms=3000)
    job_id = api.post("/api/chat", json={"message": "How do I restart the worker?"}).json()["id"]
    job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
    deadline = time.monotonic() + 30
    while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.get_status() == "started"
    job.refresh()
    key = Worker.redis_worker_namespace_prefix + job.worker_name
    worker = Worker.find_by_key(key, connection=connection)
    assert worker is not None and worker.pid
    os.kill(worker.pid, signal.SIGKILL)
    live_service.emulator.configure(latency_ms=0)

    answer = wait_for_answer(api, job_id)  # the sweep runs every 10 s
    assert answer["status"] == "finished", answer
    assert answer["sources"][0]["document"] == "runbook.md"
    # the pool replaced the killed worker: two workers beat again (a polling limit, not a timing)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = api.get("/api/health/ready", headers=_admin(live_service))
        if ready.status_code == 200 and ready.json()["checks"]["workers"]["count"] == 2:
            break
        time.sleep(0.2)
    assert ready.json()["checks"]["workers"]["count"] == 2, ready.json()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "empty"),
        ({"message": "x" * 4001}, "4000"),
        ({"message": 42}, "message"),
        ({"text": "hello"}, "message"),
        ({"message": "hi", "top_k": 0}, "top_k"),
        ({"message": "hi", "extra": True}, "extra"),
    ],
)
def test_bad_chat_input_gets_a_4xx_with_a_reason(
    api: httpx.Client, body: dict, fragment: str
) -> None:
    response = api.post("/api/chat", json=body)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_malformed_json_and_unknown_job(api: httpx.Client) -> None:
    response = api.post(
        "/api/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    missing = api.get("/api/chat/does-not-exist")
    assert missing.status_code == 404
    assert "does-not-exist" in missing.json()["detail"]


def test_openai_compatible_route(api: httpx.Client) -> None:
    response = api.post(
        "/v1/chat/completions",
        json={
            "model": "flowchat",
            "messages": [{"role": "user", "content": "How do I restart the worker?"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert "restart" in body["choices"][0]["message"]["content"].lower()
    assert body["sources"][0]["document"] == "runbook.md"
    assert api.post("/v1/chat/completions", json={"messages": []}).status_code == 422


def test_metrics_expose_the_contract_names(api: httpx.Client) -> None:
    ask(api, "How do I restart the worker?")
    text = api.get("/metrics").text
    samples = {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    for name in (
        f'{METRIC_RQ_JOBS}{{queue="flow_tasks",status="queued"}}',
        f'{METRIC_RQ_WORKERS}{{queue="flow_tasks"}}',
        f'{METRIC_CHAT_LATENCY}_bucket{{le="10.0"}}',
        f'{METRIC_FLOW_REQUESTS}{{status="200"}}',
        f'{METRIC_FLOW_REQUEST_SECONDS}_bucket{{le="+Inf"}}',
        METRIC_EMPTY_ANSWERS,
        f'{METRIC_CHAT_ANSWERS}{{outcome="answered"}}',
        "flowchat_vector_store_bytes",
    ):
        assert name in samples, name


def test_ping_and_readiness(api: httpx.Client, live_service) -> None:
    assert api.get("/api/health/ping").json() == {"status": "ok"}
    ready = api.get("/api/health/ready", headers=_admin(live_service))
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert {name for name, check in checks.items() if check["ok"]} == {
        "redis",
        "chroma",
        "workers",
        "flow",
    }
    assert checks["workers"]["count"] == 2


def test_the_stock_openai_client_talks_to_the_service(live_service) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_service.base_url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="flowchat",
        messages=[
            {"role": "system", "content": "You answer questions about operations."},
            {"role": "user", "content": "How do I restart the worker?"},
        ],
    )
    assert completion.choices[0].message.role == "assistant"
    assert "restart" in (completion.choices[0].message.content or "").lower()


def test_several_requests_waiting_on_one_job_all_get_the_answer(live_service, api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    live_service.emulator.configure(latency_ms=500)
    job_id = api.post("/api/chat", json={"message": "How do I restart the worker?"}).json()["id"]

    def wait(_: int) -> str:
        with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
            return client.get(f"/api/chat/{job_id}", params={"wait": 20}).json()["status"]

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(wait, range(3))) == ["finished"] * 3


def test_a_waiter_is_woken_once_the_answer_is_recorded(live_service, api) -> None:
    """The done signal a waiting request sleeps on (BLPOP) comes after RQ has recorded the
    success: a woken request finds the answer at once instead of polling for it."""
    from app.chat.jobs import DONE_KEY

    live_service.emulator.configure(latency_ms=300)
    connection = redis.Redis.from_url(live_service.redis_url)
    for _ in range(3):
        job_id = api.post("/api/chat", json={"message": "How do I restart the worker?"}).json()[
            "id"
        ]
        assert connection.blpop([DONE_KEY.format(job_id)], timeout=30) is not None
        # read at the instant of waking, as the API does
        job = Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)
        assert job.get_status() == "finished"
    connection.close()


def test_the_worker_charges_flows_tokens_to_the_callers_key(live_service, api) -> None:
    """The emulator reports usage.total_tokens; the worker adds it to the key's daily budget
    (the test service is open on loopback, so the caller is the anonymous key)."""
    from app.access.keys import ANONYMOUS
    from app.access.quotas import Quotas
    from app.core.settings import load_settings

    connection = redis.Redis.from_url(live_service.redis_url)
    quotas = Quotas(connection, load_settings(FLOW_TOKENS_PER_DAY=10**12))  # never capped
    before = quotas.tokens_used(ANONYMOUS)
    assert ask(api, "How do I restart the worker?")["status"] == "finished"
    assert quotas.tokens_used(ANONYMOUS) > before
