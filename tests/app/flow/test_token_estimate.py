"""app.flow.token_estimate: the emulator's usage follows the BPE rule of thumb, not a word
count."""

from __future__ import annotations

from app.flow.emulator import EmulatorConfig, create_app
from app.flow.token_estimate import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    estimate_prompt_tokens,
    estimate_tokens,
)


def test_words_long_words_and_punctuation() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hello, world!") == 4  # Hello , world !
    assert estimate_tokens("internationalization") == 4  # 20 characters, 6 per token
    assert estimate_tokens("GET /api/health/ping") == 7  # GET / api / health / ping
    # more than a word count wherever code, numbers or punctuation appear
    text = "Run `kubectl rollout restart deploy/flowchat-worker` (takes ~30 s)."
    assert estimate_tokens(text) > len(text.split())


def test_a_prompt_counts_message_framing() -> None:
    contents = ["You answer from sources.", "Question: why?"]
    assert estimate_prompt_tokens(contents) == (
        sum(estimate_tokens(c) for c in contents)
        + TOKENS_PER_MESSAGE * len(contents)
        + REPLY_PRIMING_TOKENS
    )


def test_the_emulator_reports_the_estimate() -> None:
    from fastapi.testclient import TestClient

    config = EmulatorConfig()
    with TestClient(create_app(config)) as client:
        token = client.post(
            "/auth-engine-api/v1/api-key/token",
            headers={"FlowTenant": config.tenant},
            json={
                "clientId": config.client_id,
                "clientSecret": config.client_secret.get_secret_value(),
                "appToAccess": "llm-api",
            },
        ).json()["access_token"]
        messages = [
            {"role": "system", "content": "Answer from the numbered sources."},
            {
                "role": "user",
                "content": "Sources:\n[1] a.md\nRestart with make run.\n\nQuestion: How?",
            },
        ]
        body = client.post(
            "/ai-orchestration-api/v1/openai/chat/completions",
            headers={
                "Authorization": f"Bearer {token}",
                "FlowTenant": config.tenant,
                "FlowAgent": config.client_id,
            },
            json={"model": "gpt-4o-mini", "messages": messages},
        ).json()
    usage = body["usage"]
    assert usage["prompt_tokens"] == estimate_prompt_tokens(m["content"] for m in messages)
    answer = body["choices"][0]["message"]["content"]
    assert usage["completion_tokens"] == estimate_tokens(answer)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
