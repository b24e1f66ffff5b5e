"""The emulator answers follow-ups from the conversation (app.flow.emulator.context)."""

from __future__ import annotations

from app.contracts import REFUSAL_ANSWER
from app.flow.emulator import answer_messages
from app.flow.models import ChatMessage
from app.rag.prompt import Source, build_messages

RESTART = Source(
    n=1,
    document_id="d1",
    document="runbook.md",
    heading="How to restart the worker",
    score=0.6,
    text=(
        "Restart the workers with ops.worker restart. "
        "If the queue does not drain, the command exits 1; check the worker logs."
    ),
)
ROTATE = Source(
    n=2,
    document_id="d1",
    document="runbook.md",
    heading="Rotate Flow credentials",
    score=0.5,
    text="The last step of a rotation is the smoke test.",
)


def _ask(question: str, history: list[dict[str, str]]) -> str:
    messages = build_messages(question, [RESTART, ROTATE], history=history)
    return answer_messages([ChatMessage.model_validate(m) for m in messages])


def test_earlier_user_turns_decide_between_equally_matching_sentences() -> None:
    rotation = Source(
        n=1,
        document_id="d1",
        document="runbook.md",
        score=0.6,
        text="The command then writes new secret versions.",
    )
    restart = Source(
        n=2,
        document_id="d1",
        document="runbook.md",
        score=0.5,
        text="The command then waits for the workers to restart.",
    )
    history = [
        {"role": "user", "content": "How do I restart the workers?"},
        {"role": "assistant", "content": "Use ops.worker restart [2]."},
    ]

    def ask(turns: list[dict[str, str]]) -> str:
        messages = build_messages("What does the command do then?", [rotation, restart], turns)
        return answer_messages([ChatMessage.model_validate(m) for m in messages])

    assert ask([]).startswith("The command then writes new secret versions. [1]")
    assert ask(history).startswith("The command then waits for the workers to restart. [2]")


def test_a_follow_up_naming_nothing_finds_its_topic_through_the_conversation() -> None:
    history = [{"role": "user", "content": "How do I restart the workers?"}]
    assert _ask("And then?", []) == REFUSAL_ANSWER
    answer = _ask("And then?", history)
    assert answer.startswith("Restart the workers") and "[1]" in answer


def test_the_question_outweighs_the_conversation() -> None:
    history = [{"role": "user", "content": "How do I restart the workers?"}]
    answer = _ask("What is the last step of a rotation?", history)
    assert answer.startswith("The last step of a rotation is the smoke test. [2]")


def test_assistant_turns_do_not_count() -> None:
    history = [{"role": "assistant", "content": "Restart the workers."}]
    assert _ask("And then?", history) == REFUSAL_ANSWER
