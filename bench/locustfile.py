"""Load test of a deployed flowchat through its public API (locust).

    FLOWCHAT_API_KEY=... LOAD_USERS=50 LOAD_DURATION_SECONDS=600 \\
        locust -f bench/locustfile.py --headless --host https://flowchat.staging.example

Each simulated user asks questions like a person at the chat page: mostly ``POST /api/chat`` then
``GET /api/chat/{id}?wait=30`` until the answer is there (reported as ``chat: submit -> answer``,
the end-to-end figure the runbook's latency alert watches), sometimes the OpenAI-compatible
``POST /v1/chat/completions``. Every request carries ``Authorization: Bearer $FLOWCHAT_API_KEY``.

The load has a shape (:class:`RampThenHold`): users ramp up linearly over ``LOAD_RAMP_SECONDS``,
then the load holds steady until ``LOAD_DURATION_SECONDS``. At the end a Markdown summary
(requests, p50/p95/p99, error rate per route) is printed and, when ``LOAD_SUMMARY`` names a file
(the workflow gives ``$GITHUB_STEP_SUMMARY``), appended to it. The run exits non-zero when the
error rate is above ``LOAD_MAX_ERROR_RATIO`` (default 0.01) or when no answer was received.

A 429 (per-key limits, queue full) counts as an error: size ``LOAD_USERS`` and the key's limits
together. Questions come from the regression prompts' topics; no user text is involved.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from locust import HttpUser, LoadTestShape, between, events, task

QUESTIONS = (
    "How do I restart the worker?",
    "How are the Flow credentials rotated?",
    "What should I do when messages are delayed?",
    "How do I rebuild the vector store?",
    "What does the queue depth alert mean?",
    "Who do I escalate a P1 incident to?",
)
ANSWER_NAME = "chat: submit -> answer"
WAIT_SECONDS = 30
MAX_POLLS = 6  # a chat still not answered after 3 minutes counts as failed


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {value!r}") from None


class ChatUser(HttpUser):
    wait_time = between(1, 3)  # a person reads the answer before asking again

    def on_start(self) -> None:
        key = os.environ.get("FLOWCHAT_API_KEY", "")
        if key:
            self.client.headers["Authorization"] = f"Bearer {key}"

    @task(3)
    def chat(self) -> None:
        started = time.perf_counter()
        with self.client.post(
            "/api/chat",
            json={"message": random.choice(QUESTIONS)},
            name="POST /api/chat",
            catch_response=True,
        ) as submitted:
            if submitted.status_code != 202:
                submitted.failure(f"HTTP {submitted.status_code}")
                return
            job_id = submitted.json()["id"]
        status, error = "queued", None
        for _ in range(MAX_POLLS):
            with self.client.get(
                f"/api/chat/{job_id}",
                params={"wait": WAIT_SECONDS},
                name="GET /api/chat/{id}?wait",
                catch_response=True,
            ) as polled:
                if polled.status_code != 200:
                    polled.failure(f"HTTP {polled.status_code}")
                    status, error = "failed", f"HTTP {polled.status_code}"
                    break
                view = polled.json()
                status = view["status"]
                if status in ("finished", "failed"):
                    error = view.get("error")
                    break
        failed = status != "finished"
        self.environment.events.request.fire(
            request_type="CHAT",
            name=ANSWER_NAME,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RuntimeError(error or f"chat {status}") if failed else None,
            context={},
        )

    @task(1)
    def openai_compatible(self) -> None:
        with self.client.post(
            "/v1/chat/completions",
            json={
                "model": "flowchat",
                "messages": [{"role": "user", "content": random.choice(QUESTIONS)}],
            },
            name="POST /v1/chat/completions",
            catch_response=True,
            timeout=120,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif not response.json()["choices"][0]["message"]["content"]:
                response.failure("empty answer")


class RampThenHold(LoadTestShape):
    """Ramp linearly to LOAD_USERS over LOAD_RAMP_SECONDS, hold until LOAD_DURATION_SECONDS."""

    def tick(self) -> tuple[int, float] | None:
        users = max(1, int(_env_float("LOAD_USERS", 10)))
        duration = _env_float("LOAD_DURATION_SECONDS", 300)
        ramp = min(_env_float("LOAD_RAMP_SECONDS", duration / 5), duration)
        elapsed = self.get_run_time()
        if elapsed >= duration:
            return None
        target = users if ramp <= 0 else max(1, min(users, round(users * elapsed / ramp) + 1))
        return target, max(1.0, users / max(ramp, 1.0))


def summary(environment) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """A Markdown table of every route and whether the run passes."""
    max_errors = _env_float("LOAD_MAX_ERROR_RATIO", 0.01)
    stats = environment.stats
    lines = [
        "## flowchat load test",
        "",
        f"Target: `{environment.host}`; users: {int(_env_float('LOAD_USERS', 10))}; "
        f"duration: {int(_env_float('LOAD_DURATION_SECONDS', 300))} s",
        "",
        "| route | requests | failures | error rate | p50 ms | p95 ms | p99 ms | req/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in [*sorted(stats.entries.values(), key=lambda e: e.name), stats.total]:
        requests = entry.num_requests
        rate = entry.num_failures / requests if requests else 0.0
        pct = [entry.get_response_time_percentile(q) or 0 for q in (0.5, 0.95, 0.99)]
        lines.append(
            f"| {entry.name} | {requests} | {entry.num_failures} | {rate:.2%} | "
            f"{pct[0]:.0f} | {pct[1]:.0f} | {pct[2]:.0f} | {entry.total_rps:.2f} |"
        )
    total = stats.total
    error_rate = total.num_failures / total.num_requests if total.num_requests else 1.0
    answers = stats.entries.get((ANSWER_NAME, "CHAT"))
    answered = answers is not None and answers.num_requests > answers.num_failures
    ok = error_rate <= max_errors and answered
    lines += [
        "",
        f"Error rate {error_rate:.2%} (limit {max_errors:.2%}); "
        f"{'PASS' if ok else 'FAIL'}" + ("" if answered else ": no chat was answered"),
    ]
    return "\n".join(lines) + "\n", ok


@events.quitting.add_listener
def _report(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    text, ok = summary(environment)
    print(text)
    target = os.environ.get("LOAD_SUMMARY")
    if target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(text)
    if not ok:
        environment.process_exit_code = 1
