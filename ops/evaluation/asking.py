"""Ask one question of the evaluation set through the service's public API: the
OpenAI-compatible ``POST /v1/chat/completions`` (the conversation's earlier turns as
``messages``, so conversation handling is measured too), timing the round trip."""

from __future__ import annotations

import time

import httpx
from pydantic import BaseModel, Field

from ops.evaluation.questions import EvalQuestion

COMPLETIONS_PATH = "/v1/chat/completions"
MAX_RATE_LIMIT_WAITS = 20  # 429s waited out per question (Retry-After) before giving up


class AskedSource(BaseModel):
    n: int
    document: str
    score: float
    text: str


class Asked(BaseModel):
    answer: str = ""
    sources: list[AskedSource] = Field(default_factory=list)
    total_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None  # one sentence when the service did not answer


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("error", {}).get("message") or body.get("detail")
    except ValueError:
        detail = None
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def ask(client: httpx.Client, item: EvalQuestion) -> Asked:
    messages = [m.model_dump() for m in item.history]
    messages.append({"role": "user", "content": item.question})
    started = time.perf_counter()
    try:
        for _ in range(MAX_RATE_LIMIT_WAITS):
            response = client.post(COMPLETIONS_PATH, json={"messages": messages})
            if response.status_code != 429:
                break
            time.sleep(min(60.0, float(response.headers.get("Retry-After", "1") or 1)))
    except httpx.HTTPError as exc:
        return Asked(error=f"no answer from the service: {type(exc).__name__}: {exc}")
    seconds = round(time.perf_counter() - started, 3)
    if response.status_code != 200:
        return Asked(seconds=seconds, error=_reason(response))
    body = response.json()
    return Asked(
        answer=(body["choices"][0]["message"].get("content") or "").strip(),
        sources=[AskedSource.model_validate(s) for s in body.get("sources", [])],
        total_tokens=int((body.get("usage") or {}).get("total_tokens", 0)),
        seconds=seconds,
    )
