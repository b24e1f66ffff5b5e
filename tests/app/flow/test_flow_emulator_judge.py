"""The emulator's deterministic judge applies the shared rubric and answers in its schema,
through the emulator's HTTP contract and the service's Flow client."""

from __future__ import annotations

import json

import pytest

from app.contracts import REFUSAL_ANSWER
from app.flow.client import FlowClient
from app.flow.emulator import EmulatorConfig, answer_messages, run_emulator
from app.flow.emulator import judge as emulator_judge
from app.flow.models import ChatMessage
from app.rag.judge import judge_messages, parse_verdict, rubric, rubric_version

SOURCES = {
    1: "Restart the worker with python -m ops.worker restart --stack STACK.",
    2: "The smoke test checks health, readiness and one chat.",
}


def _verdict(question: str, answer: str, history: list[str] | None = None):
    messages = [
        ChatMessage.model_validate(m) for m in judge_messages(question, answer, SOURCES, history)
    ]
    return parse_verdict(answer_messages(messages))


def test_a_supported_relevant_answer_scores_high() -> None:
    verdict = _verdict(
        "How do I restart the worker?",
        "Restart the worker with python -m ops.worker restart --stack STACK [1].",
    )
    assert verdict.rubric_version == rubric_version()
    assert (verdict.groundedness, verdict.relevance) == (5, 5)


def test_an_invented_answer_is_not_grounded() -> None:
    verdict = _verdict(
        "How do I restart the worker?",
        "Kafka consumers rebalance every hour [1]. Page the database team at night [2].",
    )
    assert verdict.groundedness == 1
    assert verdict.relevance == 1


def test_half_supported_is_three() -> None:
    verdict = _verdict(
        "What does the smoke test check?",
        "The smoke test checks health, readiness and one chat [2]. It also reboots the cluster.",
    )
    assert verdict.groundedness == 3


def test_a_refusal_is_grounded_and_not_relevant() -> None:
    verdict = _verdict("What is the Kafka offset?", REFUSAL_ANSWER)
    assert (verdict.groundedness, verdict.relevance) == (5, 1)


def test_a_follow_up_is_judged_with_its_earlier_question() -> None:
    answer = "Restart the worker with python -m ops.worker restart --stack STACK [1]."
    alone = _verdict("And on Kubernetes?", answer)
    followed = _verdict("And on Kubernetes?", answer, ["How do I restart the worker?"])
    assert followed.relevance > alone.relevance


def test_the_judge_request_carries_the_rubric_file() -> None:
    system, user = judge_messages("q?", "a [1]", SOURCES)
    assert system == {"role": "system", "content": rubric()}
    assert user["content"].startswith(f'<judge rubric="{rubric_version()}">')


def test_the_service_flow_client_gets_a_verdict_over_http() -> None:
    config = EmulatorConfig()
    with run_emulator(config) as emulator:
        flow = FlowClient(
            base_url=emulator.url,
            tenant=config.tenant,
            agent=config.client_id,
            agent_secret=config.client_secret,
        )
        try:
            reply = flow.chat(
                judge_messages("How do I restart the worker?", f"{SOURCES[1]} [1]", SOURCES),
                temperature=0,
            )
        finally:
            flow.close()
    body = json.loads(reply.content)
    assert set(body) == {"rubric_version", "groundedness", "relevance", "reason"}
    assert body["groundedness"] == 5


def test_the_emulator_implements_the_rubric_files_version() -> None:
    """Bumping judge_rubric.md without the emulator's logic fails here."""
    assert rubric_version() == emulator_judge.IMPLEMENTED_RUBRIC_VERSION


def test_a_request_of_another_rubric_version_gets_no_verdict() -> None:
    """The emulator never grades a newer rubric with its old logic under the new label."""
    messages = [
        ChatMessage.model_validate(m)
        for m in judge_messages("How do I restart the worker?", "Restart it [1].", SOURCES, None)
    ]
    current = f'<judge rubric="{rubric_version()}">'
    assert current in messages[-1].content
    bumped = messages[-1].model_copy(
        update={"content": messages[-1].content.replace(current, '<judge rubric="99">')}
    )
    reply = answer_messages([*messages[:-1], bumped])
    assert "implements rubric version" in reply and "names version 99" in reply
    with pytest.raises(ValueError, match="names version 99"):
        parse_verdict(reply)
