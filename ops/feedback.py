"""Down-voted answers as candidate regression prompts: ``python -m ops.feedback export``.

Reads the votes the chat page and API stored in Redis (``POST /api/chat/{id}/feedback``) and
writes every down-voted question, once, in the format of the regression prompts file that
``python -m ops.smoke --prompts`` reads (``docs/smoke-prompts.yaml``: a list of
``{prompt, expect_source, expect_any}``). ``expect_source`` is the document the answer cited
first and ``expect_any`` is left empty: a person reviews each candidate (which document *should*
answer it, which words a good answer has) before adding it to the regression file. Questions
already in that file are skipped. Users' comments are not exported.

Exit status 1 with one sentence when Redis cannot be reached or the output cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import redis
import yaml

from app.chat.feedback import FeedbackRecord, all_records
from ops.queue import DEFAULT_REDIS_URL, redact_url
from ops.smoke import DEFAULT_PROMPTS, RegressionPrompt, load_prompts
from ops.summary import OpsError, fail

HEADER = (
    "# Candidate regression prompts from down-voted answers (python -m ops.feedback export).\n"
    "# Review each one: set expect_source to the document that should answer it and list the\n"
    "# words a good answer contains in expect_any, then move it to docs/smoke-prompts.yaml.\n"
)
UNKNOWN_SOURCE = "unknown (the answer cited no document)"


def candidates(
    records: list[FeedbackRecord], existing: set[str], since: float | None = None
) -> list[RegressionPrompt]:
    """One candidate per distinct down-voted question not already a regression prompt."""
    seen = {p.strip().lower() for p in existing}
    out: list[RegressionPrompt] = []
    for entry in records:
        if entry.vote != "down" or (since is not None and entry.at < since):
            continue
        key = entry.question.strip().lower()
        if not key or key in seen:
            continue
        seen.add(key)
        source = entry.documents[0] if entry.documents else UNKNOWN_SOURCE
        out.append(RegressionPrompt(prompt=entry.question.strip(), expect_source=source))
    return out


def render(prompts: list[RegressionPrompt]) -> str:
    body = yaml.safe_dump(
        [p.model_dump() for p in prompts], sort_keys=False, allow_unicode=True, width=100
    )
    return HEADER + (body if prompts else "[]\n")


def _cmd_export(args: argparse.Namespace) -> int:
    password = os.environ.get("REDIS_PASSWORD") or None  # as every ops command (ops.queue)
    connection = redis.Redis.from_url(
        args.redis_url, password=password, socket_connect_timeout=5, socket_timeout=10
    )
    try:
        records = all_records(connection)
    except redis.RedisError as exc:
        raise OpsError(
            f"cannot read the votes from Redis at {redact_url(args.redis_url)} "
            f"({type(exc).__name__}); check --redis-url"
        ) from None
    existing = {p.prompt for p in load_prompts(args.existing)} if args.existing else set()
    since = time.time() - args.since_days * 86400 if args.since_days else None
    found = candidates(records, existing, since)
    text = render(found)
    down = sum(1 for r in records if r.vote == "down")
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OpsError(f"cannot write {args.output}: {exc.strerror}") from None
    say_to = sys.stderr if args.output is None else sys.stdout
    print(
        f"{len(found)} candidate prompt(s) from {down} down-vote(s) of {len(records)} vote(s)"
        + (f", written to {args.output}" if args.output else ""),
        file=say_to,
        flush=True,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.feedback",
        description="Votes on chat answers: export down-voted questions as regression prompts.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser(
        "export", help="down-voted questions as candidate regression prompts (YAML)"
    )
    export.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis URL (default: $REDIS_URL or %(default)s)",
    )
    export.add_argument(
        "--output", type=Path, default=None, help="write the YAML here (default: stdout)"
    )
    export.add_argument(
        "--existing",
        type=Path,
        default=DEFAULT_PROMPTS,
        help="skip questions already in this regression prompts file (default: %(default)s)",
    )
    export.add_argument(
        "--since-days", type=float, default=None, help="only votes of the last N days"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _cmd_export(args)
    except OpsError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
