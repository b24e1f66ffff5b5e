"""Smoke test of a running flowchat service: the runbook's "validate with a smoke-test message".

Checks, in order, each printed as one PASS/FAIL line with its duration:

1. only with the health checks (``--health``; on by default for a loopback URL: ``make run`` or
   a ``kubectl port-forward`` to the API Service): ``GET /api/health/ping`` answers 200
   ``{"status": "ok"}`` and ``GET /api/health/ready`` answers 200 (on 503 the failing checks are
   named). The Ingress does not route ``/api/health/*``, so against a public URL they are off;
2. ``GET /api/status`` answers 200 with the maintenance flag (the public URL answers at all);
3. one chat round trip (``POST /api/chat`` -> 202, then ``GET /api/chat/{id}?wait=``) returns a
   non-empty answer with at least one source, within the latency budget: through the Ingress it
   stands for readiness (Redis, Chroma, a worker and Flow all took part);
4. every regression prompt of the prompts file answers within the budget, cites the expected
   document and (when given) uses one of the expected words.

A failed health, readiness or status check stops the run (later checks could only time out); a
failed chat round trip skips the regression prompts. Exit status 0 only when every check passes.

Usage: ``python -m ops.smoke --base-url URL [--api-key KEY] [--prompts FILE] [--budget S]
[--health|--no-health]``. The API key may come from ``FLOWCHAT_API_KEY`` instead of the command
line.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from app.contracts import (
    CHAT_LATENCY_P95_SECONDS,
    CHAT_PATH,
    PING_PATH,
    READY_PATH,
    STATUS_PATH,
)
from app.observability.logs import configure_logging
from ops.stack import STACKS, resolve
from ops.summary import OpsError, fail, md_table, say, write_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROMPTS = REPO_ROOT / "docs" / "smoke-prompts.yaml"  # next to the documents it asks
API_KEY_ENV = "FLOWCHAT_API_KEY"
SMOKE_MESSAGE = "How do I restart the worker?"
MAX_WAIT_PARAM = 30.0  # the API accepts ?wait= from 0 to 30 s

Status = Literal["PASS", "FAIL", "SKIP"]


class RegressionPrompt(BaseModel):
    """One entry of the regression prompts file."""

    prompt: str = Field(min_length=1)
    expect_source: str = Field(min_length=1)
    expect_any: list[str] = Field(default_factory=list)


class CheckResult(BaseModel):
    name: str
    status: Status
    seconds: float = 0.0
    detail: str = ""


class SmokeReport(BaseModel):
    base_url: str
    budget: float
    checks: list[CheckResult] = Field(default_factory=list)
    failure: str | None = None  # the first failure, as one sentence

    @property
    def ok(self) -> bool:
        return self.failure is None and all(c.status != "FAIL" for c in self.checks)

    def markdown(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        rows = [(c.status, c.name, f"{c.seconds:.2f}", c.detail) for c in self.checks]
        text = f"### Smoke test {verdict}: {self.base_url}\n\n"
        text += f"Latency budget per chat: {self.budget:g} s.\n\n"
        text += md_table(("Result", "Check", "Seconds", "Detail"), rows)
        if self.failure:
            text += f"\n**Failure:** {self.failure}\n"
        return text


class CheckFailed(Exception):
    """A check failed; the message is the sentence shown to the operator."""


class CheckSkipped(Exception):
    """A check that does not apply (the message says why)."""


_PROMPTS = TypeAdapter(list[RegressionPrompt])


def load_prompts(path: Path) -> list[RegressionPrompt]:
    """Read the regression prompts YAML (a list of prompt/expect_source/expect_any entries)."""
    if not path.is_file():
        raise OpsError(
            f"the regression prompts file {path} does not exist; pass --prompts FILE "
            "(a YAML list of {prompt, expect_source, expect_any})"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return _PROMPTS.validate_python(data if data is not None else [])
    except yaml.YAMLError as exc:
        raise OpsError(f"the regression prompts file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OpsError(
            f"the regression prompts file {path} is malformed at {where}: {first['msg']}"
        ) from None


def _describe_connect_error(base_url: str, exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {base_url} ({exc}); is the service running at that URL?"
    if isinstance(exc, httpx.TimeoutException):
        return f"{base_url} did not answer in time ({type(exc).__name__})"
    return f"request to {base_url} failed: {exc}"


def check_ping(client: httpx.Client) -> str:
    response = client.get(PING_PATH)
    if response.status_code != 200:
        raise CheckFailed(f"health ping answered HTTP {response.status_code}, expected 200")
    body = response.json()
    if body.get("status") != "ok":
        raise CheckFailed(f'health ping answered {body!r}, expected {{"status": "ok"}}')
    return "status ok"


def check_ready(client: httpx.Client) -> str:
    response = client.get(READY_PATH)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    checks = body.get("checks") or {}
    failed = [
        f"{name} ({(c or {}).get('detail') or 'failed'})"
        for name, c in checks.items()
        if not (c or {}).get("ok")
    ]
    if response.status_code == 200:  # "degraded" (Flow trouble) still serves: say so
        status = body.get("status", "ready")
        return f"{status}: " + "; ".join(failed) if failed else f"{status}: {', '.join(checks)} ok"
    what = "; ".join(failed) if failed else f"HTTP {response.status_code}"
    raise CheckFailed(f"the service is not ready: {what}")


def check_status(client: httpx.Client) -> str:
    """The maintenance status: a read-only route the Ingress routes, with no key needed."""
    response = client.get(STATUS_PATH)
    if response.status_code != 200:
        raise CheckFailed(f"GET {STATUS_PATH} answered HTTP {response.status_code}, expected 200")
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if not isinstance(body.get("maintenance"), bool):
        raise CheckFailed(f"GET {STATUS_PATH} answered {response.text[:200]!r}, not a status")
    if body["maintenance"]:  # said, not failed: the chat round trip decides
        return f"maintenance on: {body.get('reason') or 'no reason given'}"
    return "maintenance off"


def health_reachable(base_url: str) -> bool:
    """The health routes are reachable on a loopback URL (``make run``, a ``kubectl
    port-forward`` to the API Service), never through the Ingress, which does not route them."""
    host = httpx.URL(base_url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ask(
    client: httpx.Client,
    message: str,
    budget: float,
    progress: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Submit one chat message and wait for the finished job, within ``budget`` seconds."""
    started = time.monotonic()
    response = client.post(CHAT_PATH, json={"message": message})
    if response.status_code in (401, 403):
        raise CheckFailed(
            f"the chat API refused the API key (HTTP {response.status_code}); "
            f"set --api-key or {API_KEY_ENV}"
        )
    if response.status_code == 429:  # a full queue or one of the key's limits: the reason says
        retry = response.headers.get("Retry-After", "?")
        try:
            reason = str(response.json().get("detail", ""))[:300]
        except ValueError:
            reason = ""
        raise CheckFailed(f"the chat was refused (HTTP 429, Retry-After {retry} s): {reason}")
    if response.status_code != 202:
        raise CheckFailed(
            f"POST {CHAT_PATH} answered HTTP {response.status_code}, expected 202: "
            f"{response.text[:200]}"
        )
    job_id = response.json()["id"]
    status = "queued"
    while True:
        remaining = budget - (time.monotonic() - started)
        if remaining <= 0:
            raise CheckFailed(
                f"the chat job {job_id} did not finish within the {budget:g} s latency budget "
                f"(still {status}); are the workers running?"
            )
        wait = max(0.0, min(remaining, MAX_WAIT_PARAM))
        poll_started = time.monotonic()
        reply = client.get(
            f"{CHAT_PATH}/{job_id}",
            params={"wait": f"{wait:.1f}"},
            timeout=httpx.Timeout(wait + 10.0),
        )
        if reply.status_code != 200:
            raise CheckFailed(
                f"GET {CHAT_PATH}/{job_id} answered HTTP {reply.status_code}, expected 200"
            )
        job: dict[str, Any] = reply.json()
        status = job.get("status", "unknown")
        if status == "finished":
            return job
        if status == "failed":
            raise CheckFailed(f"the chat job failed: {job.get('error') or 'no reason given'}")
        progress(f"  ... job {job_id} is {status} after {time.monotonic() - started:.1f} s")
        if time.monotonic() - poll_started < 0.2:  # the server did not block on ?wait=
            time.sleep(0.2)


def _source_names(job: dict[str, Any]) -> list[str]:
    return [str(s.get("document") or "") for s in job.get("sources") or []]


def check_chat(client: httpx.Client, budget: float, progress: Callable[[str], None]) -> str:
    job = ask(client, SMOKE_MESSAGE, budget, progress)
    answer = (job.get("answer") or "").strip()
    if not answer:
        raise CheckFailed("the chat round trip returned an empty answer")
    sources = _source_names(job)
    if not sources:
        raise CheckFailed("the chat round trip returned an answer without any source")
    return f"{len(answer)} chars, sources: {', '.join(sorted(set(sources)))}"


def check_prompt(
    client: httpx.Client,
    item: RegressionPrompt,
    budget: float,
    progress: Callable[[str], None],
) -> str:
    job = ask(client, item.prompt, budget, progress)
    answer = (job.get("answer") or "").strip()
    if not answer:
        raise CheckFailed(f"the prompt {item.prompt!r} got an empty answer")
    sources = _source_names(job)
    wanted = Path(item.expect_source).name.lower()
    if wanted not in {Path(s).name.lower() for s in sources}:
        raise CheckFailed(
            f"the prompt {item.prompt!r} did not cite {item.expect_source} "
            f"(sources: {', '.join(sources) or 'none'})"
        )
    if item.expect_any:
        lowered = answer.lower()
        if not any(word.lower() in lowered for word in item.expect_any):
            raise CheckFailed(
                f"the answer to {item.prompt!r} contains none of {', '.join(item.expect_any)}"
            )
    return f"cites {item.expect_source}"


def check_keyless_refused(client: httpx.Client, allow_open: bool) -> str:
    """A chat request without any key must be refused (401/403) before anything is queued.
    The probe carries no question (``{}``): an open service answers 422 and queues nothing."""
    request = client.build_request("POST", CHAT_PATH, json={})
    for name in ("X-API-Key", "Authorization"):
        request.headers.pop(name, None)
    response = client.send(request)
    if response.status_code in (401, 403):
        return f"refused without a key (HTTP {response.status_code})"
    if allow_open:
        raise CheckSkipped(f"the service is open (HTTP {response.status_code}); --allow-open")
    raise CheckFailed(
        f"POST {CHAT_PATH} without an API key answered HTTP {response.status_code}, expected 401: "
        "the chat API is open to anyone (set API_KEYS or API_KEYS_FILE on the API)"
    )


def run_smoke(
    base_url: str,
    *,
    api_key: str | None = None,
    allow_open: bool = False,
    health: bool | None = None,
    prompts: list[RegressionPrompt] | None = None,
    budget: float = CHAT_LATENCY_P95_SECONDS,
    timeout: float = 10.0,
    progress: Callable[[str], None] = say,
    transport: httpx.BaseTransport | None = None,
) -> SmokeReport:
    """Run every check against ``base_url`` and return the report (never raises on a failure).
    ``health``: run the health and readiness checks (``None``: only on a loopback URL)."""
    base_url = base_url.rstrip("/")
    if health is None:
        health = health_reachable(base_url)
    report = SmokeReport(base_url=base_url, budget=budget)
    headers = {"X-API-Key": api_key} if api_key else {}
    client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)

    def run(name: str, check: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail = check()
        except CheckSkipped as exc:
            result = CheckResult(name=name, status="SKIP", detail=str(exc))
        except CheckFailed as exc:
            result = CheckResult(name=name, status="FAIL", detail=str(exc))
        except httpx.HTTPError as exc:
            result = CheckResult(
                name=name, status="FAIL", detail=_describe_connect_error(base_url, exc)
            )
        else:
            result = CheckResult(name=name, status="PASS", detail=detail)
        result.seconds = time.monotonic() - started
        report.checks.append(result)
        progress(f"{result.status}  {name:<40} {result.seconds:6.2f} s  {result.detail}")
        if result.status == "FAIL" and report.failure is None:
            report.failure = f"{name}: {result.detail}"
        return result.status != "FAIL"

    def skip(names: list[str], why: str) -> None:
        for name in names:
            report.checks.append(CheckResult(name=name, status="SKIP", detail=why))
            progress(f"SKIP  {name:<40} {'':>8}  {why}")

    prompt_names = [f"prompt {i + 1}: {p.prompt[:40]}" for i, p in enumerate(prompts or [])]
    with client:
        progress(f"Smoke test of {base_url} (latency budget {budget:g} s per chat)")
        later = ["status", "keyless chat refused", "chat round trip", *prompt_names]
        if health and not run("health ping", lambda: check_ping(client)):
            skip(["readiness", *later], "service not reachable")
            return report
        if health and not run("readiness", lambda: check_ready(client)):
            skip(later, "service not ready")
            return report
        if not run("status", lambda: check_status(client)):
            skip(later[1:], "service not reachable")
            return report
        run("keyless chat refused", lambda: check_keyless_refused(client, allow_open))
        if not run("chat round trip", lambda: check_chat(client, budget, progress)):
            skip(prompt_names, "chat round trip failed")
            return report
        for name, item in zip(prompt_names, prompts or [], strict=True):
            run(name, lambda item=item: check_prompt(client, item, budget, progress))
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.smoke",
        description="Smoke-test a flowchat deployment: (health and readiness,) the status, one "
        "chat round trip with sources, then the regression prompts. Exit 0 only if all pass.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="service URL, e.g. https://chat.example")
    where.add_argument(
        "--stack",
        choices=STACKS,
        help="the stack's URL (and, for local, its API key) from ops.stack; instead of --base-url",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"API key for the chat routes (default: ${API_KEY_ENV}; prefer the variable)",
    )
    parser.add_argument(
        "--prompts",
        type=Path,
        default=DEFAULT_PROMPTS,
        help="regression prompts YAML (default: docs/smoke-prompts.yaml)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=CHAT_LATENCY_P95_SECONDS,
        help="seconds each chat may take from submission to answer (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-open",
        action="store_true",
        help="a service that answers chat without an API key passes (only for `make run`)",
    )
    parser.add_argument(
        "--health",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also check /api/health/ping and /api/health/ready (default: only on a loopback "
        "URL such as `make run` or a kubectl port-forward; the Ingress does not route them)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each plain HTTP request (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.smoke", stream=sys.stderr)  # library warnings, off stdout
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        prompts = load_prompts(args.prompts)
        if args.stack:
            with resolve(args.stack, need_redis=False, need_secrets=False) as target:
                args.base_url = target.api_url
                if api_key is None and target.api_key is not None:
                    api_key = target.api_key.get_secret_value()
    except OpsError as exc:
        return fail(str(exc))
    report = run_smoke(
        args.base_url,
        api_key=api_key,
        allow_open=args.allow_open,
        health=args.health,
        prompts=prompts,
        budget=args.budget,
        timeout=args.timeout,
    )
    write_summary(report.markdown())
    if not report.ok:
        return fail(f"smoke test of {report.base_url} failed: {report.failure}")
    say(f"Smoke test of {report.base_url} passed ({len(report.checks)} checks).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
