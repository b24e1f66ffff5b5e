"""A key's usage of its limits: ``python -m ops.keys usage|reset --key-id ID``.

``usage`` prints, for the key id (the 12 hex digits metrics and logs name a key by), its chat
requests this minute, its Flow tokens today (reservations of chats in flight included) and the
bytes its chats stored while results are kept, each with its limit and the seconds until the
window resets. ``reset`` forgets those counters, so the key is admitted again at once (for
example after benchmarks against the emulator, or an incident that burnt a team's budget).
``--key -`` instead of ``--key-id`` asks for a key you hold (typed, not echoed, never on the
command line) and computes its id with ``KEY_ID_SECRET``.

Redis is reached as by every ops command: ``--stack staging|prod|local`` (``ops.stack``:
port-forward and password from the stack's Secret, or the file ``make run`` writes), or the
override ``--redis-url`` (default ``$REDIS_URL``) with ``REDIS_PASSWORD``. Exit status 1 with
one sentence when Redis cannot be reached.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys

import redis

from app.access.keys import key_id
from app.access.quotas import Quotas
from app.core.settings import load_settings
from ops.queue import DEFAULT_REDIS_URL, connection
from ops.stack import add_stack_arguments
from ops.summary import OpsError, fail

KEY_ID = re.compile(r"^(anonymous|[0-9a-f]{12})$")


def _key_id(args: argparse.Namespace) -> str:
    if args.key is not None:
        key = getpass.getpass("API key: ") if args.key == "-" else args.key
        return key_id(key, os.environ.get("KEY_ID_SECRET", ""))
    if not KEY_ID.match(args.key_id):
        raise OpsError(f"{args.key_id!r} is no key id: give 12 hex digits or 'anonymous'")
    return args.key_id


def run(args: argparse.Namespace) -> int:
    ident = _key_id(args)
    with connection(args) as (conn, where):
        quotas = Quotas(conn, load_settings(REDIS_URL=args.redis_url))
        try:
            if args.command == "reset":
                removed = quotas.reset(ident)
                print(f"key {ident}: {removed} counter(s) reset; its limits start afresh")
                return 0
            report = quotas.usage(ident)
        except redis.RedisError as exc:
            raise OpsError(
                f"lost the connection to Redis ({where}) while reading the key's counters: "
                f"{type(exc).__name__}"
            ) from None
    if args.json:
        print(json.dumps({"key_id": ident, **report}))
        return 0
    for name, row in report.items():
        print(
            f"{ident}  {name:<22} {row['used']:>14,} of {row['limit']:>14,}  "
            f"resets in {row['resets_in']} s"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.keys", description="See or reset a key's usage of its limits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("usage", "requests, Flow tokens and stored bytes the key used, with its limits"),
        ("reset", "forget the key's counters: it is admitted again at once"),
    ):
        cmd = sub.add_parser(name, help=text)
        who = cmd.add_mutually_exclusive_group(required=True)
        who.add_argument("--key-id", help="the key id (12 hex digits, as in metrics and logs)")
        who.add_argument(
            "--key",
            help="the key ('-': asked for, not echoed); its id is computed with KEY_ID_SECRET",
        )
        add_stack_arguments(cmd)
        cmd.add_argument(
            "--redis-url",
            default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
            help="override of --stack: Redis URL, password in REDIS_PASSWORD "
            "(default: $REDIS_URL or %(default)s)",
        )
        if name == "usage":
            cmd.add_argument("--json", action="store_true", help="one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except OpsError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
