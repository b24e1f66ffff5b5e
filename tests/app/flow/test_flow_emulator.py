"""The Flow emulator over real HTTP: contract checks, extractive answers, knobs, admin routes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.flow.client import CHAT_PATH, TOKEN_PATH
from app.flow.emulator import (
    NOT_FOUND_ANSWER,
    EmulatorConfig,
    EmulatorHandle,
    answer_prompt,
    config_from_args,
    parse_prompt,
    run_emulator,
)
from app.flow.models import ChatCompletion

AGENT = "emu-agent"
SECRET = "emu-secret-do-not-print"
TENANT = "emu-tenant"
REPO = Path(__file__).resolve().parents[3]

PROMPT = """Sources:
[1] runbook.md > Scale the API
Scale the API with kubectl scale deployment/flowchat-api --replicas=3.
Check the HorizontalPodAutoscaler afterwards.

[2] runbook.md > Restart Worker
- To restart the worker, run kubectl rollout restart deployment/flowchat-worker.
- Then watch the queue depth drain on the dashboard.

[3] faq.pdf > Billing (page 3)
Invoices are sent monthly by e-mail.

Question: How do I restart the worker?"""


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(client_id=AGENT, client_secret=SECRET, tenant=TENANT, seed=1)
    with run_emulator(config) as handle:
        yield handle


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


def token_body(**changes: str) -> dict[str, str]:
    return {"clientId": AGENT, "clientSecret": SECRET, "appToAccess": "llm-api", **changes}


def get_token(http: httpx.Client) -> str:
    reply = http.post(TOKEN_PATH, json=token_body(), headers={"FlowTenant": TENANT})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def chat_headers(token: str, tenant: str = TENANT, agent: str = AGENT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "FlowTenant": tenant, "FlowAgent": agent}


def chat_body(content: str = PROMPT) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer only from the sources; cite them like [1]."},
            {"role": "user", "content": content},
        ],
        "temperature": 0.1,
    }


# --- token endpoint -----------------------------------------------------------------------------


def test_token_issued_with_lifetime(emulator: EmulatorHandle, http: httpx.Client) -> None:
    emulator.configure(token_lifetime=120)
    reply = http.post(TOKEN_PATH, json=token_body(), headers={"FlowTenant": TENANT})
    assert reply.status_code == 200
    data = reply.json()
    assert data["expires_in"] == 120
    assert len(data["access_token"]) >= 32
    assert emulator.stats().tokens_issued == 1


@pytest.mark.parametrize(
    ("body", "tenant", "status"),
    [
        (token_body(clientSecret="wrong"), TENANT, 401),
        (token_body(clientId="someone-else"), TENANT, 401),
        (token_body(), "other-tenant", 401),
        (token_body(), None, 401),
        ({"clientId": AGENT}, TENANT, 400),
        (token_body(appToAccess="other-app"), TENANT, 403),
    ],
)
def test_token_rejections(
    http: httpx.Client, body: dict[str, str], tenant: str | None, status: int
) -> None:
    headers = {"FlowTenant": tenant} if tenant else {}
    reply = http.post(TOKEN_PATH, json=body, headers=headers)
    assert reply.status_code == status
    assert "access_token" not in reply.json()
    assert SECRET not in reply.text


def test_token_rejects_non_json(http: httpx.Client) -> None:
    reply = http.post(TOKEN_PATH, content=b"clientId=x", headers={"FlowTenant": TENANT})
    assert reply.status_code == 400


# --- chat endpoint: access checks ---------------------------------------------------------------


def test_chat_rejects_bad_tokens_tenants_and_agents(
    emulator: EmulatorHandle, http: httpx.Client
) -> None:
    token = get_token(http)
    cases = [
        ({"FlowTenant": TENANT, "FlowAgent": AGENT}, 401),  # no bearer token
        (chat_headers("not-a-token-we-issued"), 401),
        ({"Authorization": f"Bearer {token}", "FlowAgent": AGENT}, 401),  # no tenant
        (chat_headers(token, tenant="other-tenant"), 403),
        (chat_headers(token, agent="other-agent"), 403),
    ]
    for headers, status in cases:
        reply = http.post(CHAT_PATH, json=chat_body(), headers=headers)
        assert reply.status_code == status, headers
    assert http.post(CHAT_PATH, json=chat_body(), headers=chat_headers(token)).status_code == 200
    assert emulator.stats().chat_responses == {"401": 3, "403": 2, "200": 1}


def test_chat_rejects_expired_tokens(emulator: EmulatorHandle, http: httpx.Client) -> None:
    token = get_token(http)
    reply = http.post("/_emulator/config", json={"expire_tokens": True})
    assert reply.status_code == 200
    reply = http.post(CHAT_PATH, json=chat_body(), headers=chat_headers(token))
    assert reply.status_code == 401
    assert "expired" in reply.json()["error"]["message"]


def test_chat_validates_body(http: httpx.Client) -> None:
    headers = chat_headers(get_token(http))
    assert http.post(CHAT_PATH, content=b"{not json", headers=headers).status_code == 400
    missing = http.post(CHAT_PATH, json={"model": "m", "messages": []}, headers=headers)
    assert missing.status_code == 422
    assert "messages" in missing.json()["error"]["message"]
    bad_role = {"model": "m", "messages": [{"role": "robot", "content": "hi"}]}
    assert http.post(CHAT_PATH, json=bad_role, headers=headers).status_code == 422


# --- chat endpoint: answers ---------------------------------------------------------------------


def test_extractive_answer_cites_the_right_source(http: httpx.Client) -> None:
    headers = chat_headers(get_token(http))
    reply = http.post(CHAT_PATH, json=chat_body(), headers=headers)
    assert reply.status_code == 200
    completion = ChatCompletion.model_validate(reply.json())
    assert completion.object == "chat.completion"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert "rollout restart deployment/flowchat-worker" in completion.content
    assert "[2]" in completion.content
    assert "[1]" not in completion.content and "[3]" not in completion.content
    again = http.post(CHAT_PATH, json=chat_body(), headers=headers).json()
    assert again["choices"][0]["message"]["content"] == completion.content


def test_answer_picks_source_by_question() -> None:
    prompt = PROMPT.replace("How do I restart the worker?", "When are invoices sent?")
    answer = answer_prompt(prompt)
    assert answer == "Invoices are sent monthly by e-mail. [3]"


def test_answer_not_found_without_sources_or_overlap() -> None:
    assert answer_prompt("Sources:\n\nQuestion: How do I restart the worker?") == NOT_FOUND_ANSWER
    unrelated = PROMPT.replace("How do I restart the worker?", "What colour is the sky?")
    assert answer_prompt(unrelated) == NOT_FOUND_ANSWER


def test_answer_to_unstructured_prompt_is_generic() -> None:
    answer = answer_prompt("Tell me a joke")
    assert answer and answer != NOT_FOUND_ANSWER
    assert answer == answer_prompt("Tell me a joke")


def test_parse_prompt_reads_multiline_sources() -> None:
    sources, question = parse_prompt(PROMPT)
    assert question == "How do I restart the worker?"
    assert [s.n for s in sources] == [1, 2, 3]
    assert sources[2].title == "faq.pdf > Billing (page 3)"
    assert sources[1].text.count("\n") == 1
    assert "Question" not in sources[2].text


# --- knobs and admin routes ---------------------------------------------------------------------


def test_fail_next_and_stats(http: httpx.Client) -> None:
    headers = chat_headers(get_token(http))
    assert (
        http.post("/_emulator/config", json={"fail_next": 2, "fail_status": 503}).status_code == 200
    )
    statuses = [
        http.post(CHAT_PATH, json=chat_body(), headers=headers).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    stats = http.get("/_emulator/stats").json()
    assert stats["token_calls"] == 1
    assert stats["chat_calls"] == 3
    assert stats["chat_responses"] == {"503": 2, "200": 1}


def test_error_and_rate_limit_rates(http: httpx.Client) -> None:
    headers = chat_headers(get_token(http))
    http.post("/_emulator/config", json={"rate_limit_rate": 1.0})
    limited = http.post(CHAT_PATH, json=chat_body(), headers=headers)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    http.post("/_emulator/config", json={"rate_limit_rate": 0.0, "error_rate": 1.0})
    assert http.post(CHAT_PATH, json=chat_body(), headers=headers).status_code == 500


def test_config_update_is_validated_and_hides_secret(http: httpx.Client) -> None:
    assert http.post("/_emulator/config", json={"error_rate": 2}).status_code == 422
    assert http.post("/_emulator/config", json={"unknown": 1}).status_code == 422
    reply = http.post("/_emulator/config", json={"latency_ms": 5})
    assert reply.json()["config"]["latency_ms"] == 5
    assert SECRET not in reply.text


def test_seeded_error_rate_is_reproducible() -> None:
    def run() -> list[int]:
        config = EmulatorConfig(
            client_id=AGENT, client_secret=SECRET, tenant=TENANT, error_rate=0.5, seed=42
        )
        with run_emulator(config) as emu, httpx.Client(base_url=emu.url) as client:
            headers = chat_headers(get_token(client))
            return [
                client.post(CHAT_PATH, json=chat_body(), headers=headers).status_code
                for _ in range(12)
            ]

    first = run()
    assert first == run()
    assert {200, 500} == set(first)


def test_latency_does_not_block_other_requests(emulator: EmulatorHandle) -> None:
    emulator.configure(latency_ms=1500)
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        headers = chat_headers(get_token(client))
        statuses: list[int] = []
        slow = threading.Thread(
            target=lambda: statuses.append(
                client.post(CHAT_PATH, json=chat_body(), headers=headers).status_code
            )
        )
        slow.start()
        with httpx.Client(base_url=emulator.url, timeout=10) as other:
            seen = other.get("/_emulator/stats").json()
            while seen["chat_calls"] == 0:
                seen = other.get("/_emulator/stats").json()
            # served while the slow chat is still sleeping
            assert seen["in_flight"] == 1
            assert other.post(TOKEN_PATH, json=token_body(), headers={"FlowTenant": TENANT})
        slow.join()
    assert statuses == [200]
    assert emulator.stats().in_flight == 0


# --- command line -------------------------------------------------------------------------------


def test_cli_reads_credentials_from_env() -> None:
    env = {"FLOW_AGENT": "a", "FLOW_AGENT_SECRET": SECRET, "FLOW_TENANT": "t"}
    config = config_from_args(["--port", "0", "--latency-ms", "25", "--seed", "3"], env=env)
    assert (config.client_id, config.tenant, config.port) == ("a", "t", 0)
    assert config.client_secret.get_secret_value() == SECRET
    assert (config.latency_ms, config.seed) == (25.0, 3)
    assert SECRET not in repr(config) and SECRET not in str(config)
    flagged = config_from_args(["--client-id", "b"], env=env)
    assert flagged.client_id == "b"


def test_cli_serves_on_a_free_port() -> None:
    env = {**os.environ, "FLOW_AGENT": AGENT, "FLOW_AGENT_SECRET": SECRET, "FLOW_TENANT": TENANT}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.flow.emulator", "--port", "0", "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in banner, banner
        assert SECRET not in banner
        url = banner.split("serving on ")[1].split()[0]
        with httpx.Client(base_url=url, timeout=10) as client:
            token = get_token(client)
            reply = client.post(CHAT_PATH, json=chat_body(), headers=chat_headers(token))
        assert reply.status_code == 200
        assert "[2]" in reply.json()["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
