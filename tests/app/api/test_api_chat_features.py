"""Conversations, votes and openable sources on the real service (`make run`'s stack)."""

from __future__ import annotations

import httpx
import pytest
import redis
from service_testlib import wait_for_answer

from app.access.keys import ANONYMOUS
from app.chat.conversations import conversation_key
from app.contracts import METRIC_FEEDBACK
from app.core.settings import REPO_ROOT


@pytest.fixture
def api(live_service) -> httpx.Client:
    live_service.emulator.reset()
    with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
        yield client


def answer(api: httpx.Client, message: str, **extra) -> dict:
    accepted = api.post("/api/chat", json={"message": message, **extra})
    assert accepted.status_code == 202, accepted.text
    done = wait_for_answer(api, accepted.json()["id"])
    assert done["status"] == "finished", done
    return {**done, "conversation_id": accepted.json()["conversation_id"]}


def headings(result: dict) -> list[str]:
    return [(s["heading"] or "").lower() for s in result["sources"]]


def test_a_follow_up_in_a_conversation_retrieves_with_its_context(live_service, api) -> None:
    first = answer(api, "How do I rotate the Flow credentials?")
    conversation = first["conversation_id"]
    follow_up = "And who has to approve it?"
    alone = answer(api, follow_up)
    within = answer(api, follow_up, conversation_id=conversation)
    assert within["conversation_id"] == conversation
    assert any("rotate" in h for h in headings(within)[:3]), headings(within)
    assert headings(alone) != headings(within)
    turns = redis.Redis.from_url(live_service.redis_url).lrange(
        conversation_key(ANONYMOUS, conversation),
        0,
        -1,  # live_service has no keys
    )
    assert len(turns) == 4  # two questions and two answers
    bad = api.post("/api/chat", json={"message": "hi", "conversation_id": "no spaces allowed"})
    assert bad.status_code == 422 and "conversation_id" in bad.json()["detail"]


def votes(api: httpx.Client, kind: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(f'{METRIC_FEEDBACK}{{vote="{kind}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"{METRIC_FEEDBACK} has no {kind} series")


def test_votes_are_counted_once_per_answer_and_bad_votes_refused(api) -> None:
    result = answer(api, "How do I restart the worker?")
    url = f"/api/chat/{result['id']}/feedback"
    before = votes(api, "down")
    assert api.post(url, json={"vote": "down", "comment": "too vague"}).json() == {
        "id": result["id"],
        "vote": "down",
    }
    assert api.post(url, json={"vote": "down"}).status_code == 200  # the same vote again
    assert votes(api, "down") == before + 1
    assert api.post(url, json={"vote": "sideways"}).status_code == 422
    assert api.post(url, json={"vote": "up", "comment": "x" * 1001}).status_code == 422
    assert api.post("/api/chat/nope/feedback", json={"vote": "up"}).status_code == 404


def test_a_cited_passage_opens_with_its_neighbours(live_service, api) -> None:
    result = answer(api, "How do I restart the worker?")
    source = result["sources"][0]
    assert source["chunk"] is not None
    url = f"/api/documents/{source['document_id']}/passages/{source['chunk']}"
    passage = api.get(url)
    assert passage.status_code == 200, passage.text
    body = passage.json()
    assert body["document"] == "runbook.md"
    assert body["passage"]["text"] == source["text"]
    assert body["before"] is not None or body["after"] is not None
    if body["after"]:
        assert body["after"]["n"] == source["chunk"] + 1
    missing = api.get(f"/api/documents/{source['document_id']}/passages/999999")
    assert missing.status_code == 404

    file_url = f"/api/documents/{source['document_id']}/file"
    assert api.get(file_url).status_code == 401  # the original file is for the admin token
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    original = api.get(file_url, headers=admin)
    assert original.status_code == 200
    assert original.content == (REPO_ROOT / "docs" / "runbook.md").read_bytes()
    assert "runbook.md" in original.headers["content-disposition"]
