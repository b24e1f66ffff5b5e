"""Rebuild the vector store and check search quality: the runbook's "Rebuild Vector Store".

``python -m ops.vectorstore rebuild --base-url URL --admin-token-env VAR [--prompts FILE]``

The service re-ingests every stored document into a fresh collection and switches to it when
complete (``POST /api/documents/ingest``), so nothing has to be stopped or deleted by hand. This
command starts the rebuild, follows ``GET /api/documents/ingest/{job_id}`` until it is done or
failed, then runs the smoke test with the regression prompts (``ops.smoke``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.contracts import CHAT_LATENCY_P95_SECONDS, INGEST_PATH
from app.observability.logs import configure_logging
from ops.smoke import API_KEY_ENV, DEFAULT_PROMPTS, load_prompts, run_smoke
from ops.stack import STACKS, resolve
from ops.summary import OpsError, fail, md_table, say, write_summary

DONE = {"done", "finished", "completed", "complete", "succeeded", "ingested"}
FAILED = {"failed", "error", "stopped", "canceled", "cancelled"}


def rebuild(
    client: httpx.Client,
    *,
    timeout: float = 1800.0,
    interval: float = 2.0,
    progress: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Start the re-ingestion and follow it; return the final job state or raise OpsError."""
    try:
        response = client.post(INGEST_PATH)
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot reach {client.base_url}: {exc}") from None
    if response.status_code in (401, 403):
        raise OpsError(
            f"the service refused the admin token (HTTP {response.status_code}); "
            "check the variable named by --admin-token-env"
        )
    if response.status_code != 202:
        raise OpsError(
            f"POST {INGEST_PATH} answered HTTP {response.status_code}: {response.text[:200]}"
        )
    job_id = response.json()["job_id"]
    progress(f"Re-ingestion job {job_id} started")
    started = time.monotonic()
    while True:
        try:
            reply = client.get(f"{INGEST_PATH}/{job_id}")
        except httpx.HTTPError as exc:
            raise OpsError(f"lost contact with {client.base_url}: {exc}") from None
        if reply.status_code != 200:
            raise OpsError(f"GET {INGEST_PATH}/{job_id} answered HTTP {reply.status_code}")
        job: dict[str, Any] = reply.json()
        status = str(job.get("status", "unknown")).lower()
        elapsed = time.monotonic() - started
        progress(f"  [{elapsed:6.1f} s] {status}: {job.get('done', '?')}/{job.get('total', '?')}")
        if status in FAILED:
            raise OpsError(f"the re-ingestion failed: {job.get('error') or 'no reason given'}")
        if status in DONE:
            return job
        if elapsed >= timeout:
            raise OpsError(f"the re-ingestion did not finish within {timeout:g} s ({status})")
        time.sleep(interval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.vectorstore",
        description="Operate the vector store (Chroma) of a flowchat deployment.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rebuild", help="re-ingest every document, then run the smoke prompts")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="service URL (admin token from --admin-token-env)")
    where.add_argument(
        "--stack", choices=STACKS, help="the stack's URL and admin token from ops.stack"
    )
    r.add_argument(
        "--admin-token-env",
        default="ADMIN_TOKEN",
        help="name of the environment variable holding the admin token (default: %(default)s)",
    )
    r.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS, help="regression prompts")
    r.add_argument("--budget", type=float, default=CHAT_LATENCY_P95_SECONDS)
    r.add_argument(
        "--allow-open",
        action="store_true",
        help="the smoke passes a service that answers chat without an API key (`make run`)",
    )
    r.add_argument("--timeout", type=float, default=1800.0, help="seconds for the re-ingestion")
    r.add_argument("--interval", type=float, default=2.0, help="seconds between progress polls")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.vectorstore", stream=sys.stderr)  # library warnings, off stdout
    token = os.environ.get(args.admin_token_env)
    api_key = os.environ.get(API_KEY_ENV) or None
    try:
        if args.stack:
            with resolve(args.stack, need_redis=False) as target:
                args.base_url = target.api_url
                if target.admin_token is not None:
                    token = target.admin_token.get_secret_value()
                if api_key is None and target.api_key is not None:
                    api_key = target.api_key.get_secret_value()
    except OpsError as exc:
        return fail(str(exc))
    if not token:
        return fail(f"the environment variable {args.admin_token_env} (admin token) is not set")
    try:
        prompts = load_prompts(args.prompts)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=args.base_url.rstrip("/"), headers=headers, timeout=30) as c:
            job = rebuild(c, timeout=args.timeout, interval=args.interval)
    except OpsError as exc:
        write_summary(f"### Vector store rebuild FAILED\n\n{exc}\n")
        return fail(str(exc))
    say(f"Re-ingestion finished: {job.get('done')}/{job.get('total')} documents")
    report = run_smoke(
        args.base_url,
        api_key=api_key,
        allow_open=args.allow_open,
        prompts=prompts,
        budget=args.budget,
    )
    rows = [("re-ingestion", f"{job.get('done')}/{job.get('total')} -> {job.get('collection')}")]
    rows += [(f"{c.status} {c.name}", c.detail) for c in report.checks]
    write_summary("### Vector store rebuild\n\n" + md_table(("Step", "Detail"), rows))
    if not report.ok:
        return fail(f"the vector store was rebuilt but the smoke test failed: {report.failure}")
    say("Vector store rebuilt and the regression prompts pass.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
