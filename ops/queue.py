"""Inspect the chat queue in Redis: the runbook's queue-depth and Redis-connectivity checks.

Subcommands:

- ``status``: queue depth (``LLEN rq:queue:flow_tasks``), workers registered for the queue,
  started and failed job counts. Exits 1 with one sentence when Redis is unreachable.
- ``watch``: print depth, started and failed counts every ``--interval`` seconds until
  ``--timeout``; with ``--until-drained`` stop as soon as the queue is empty. Exit 0 when the
  queue was drained within the timeout, 1 otherwise.
- ``drain``: ``watch --until-drained`` (after a worker restart the backlog drains within
  ``QUEUE_DRAIN_SECONDS``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import BaseModel
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from app.contracts import QUEUE_DRAIN_SECONDS, QUEUE_KEY, QUEUE_NAME
from app.observability.logs import configure_logging
from ops.summary import OpsError, fail, md_table, say, write_summary

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class QueueSnapshot(BaseModel):
    depth: int
    started: int
    failed: int
    workers: int | None = None

    def line(self) -> str:
        text = f"depth={self.depth} started={self.started} failed={self.failed}"
        return text if self.workers is None else f"{text} workers={self.workers}"


class WatchResult(BaseModel):
    drained: bool
    seconds: float
    samples: list[QueueSnapshot]


def redact_url(url: str) -> str:
    """The Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def connect(url: str, timeout: float = 5.0) -> redis.Redis:
    """Open a Redis connection and PING it; raise OpsError with a clear sentence on failure.
    The password comes from the URL or from ``REDIS_PASSWORD`` (as for the service)."""
    password = os.environ.get("REDIS_PASSWORD") or None
    try:
        conn = redis.Redis.from_url(
            url, password=password, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        conn.ping()
    except (redis.exceptions.RedisError, ValueError, OSError) as exc:
        raise OpsError(f"Redis at {redact_url(url)} is unreachable: {exc}") from None
    return conn


def snapshot(conn: redis.Redis, *, with_workers: bool = False) -> QueueSnapshot:
    """Depth, started, failed (and optionally registered workers) of the chat queue."""
    try:
        queue = Queue(QUEUE_NAME, connection=conn)
        depth = int(conn.llen(QUEUE_KEY))
        started = StartedJobRegistry(queue=queue).count
        failed = FailedJobRegistry(queue=queue).count
        workers = len(Worker.all(queue=queue)) if with_workers else None
    except redis.exceptions.RedisError as exc:
        raise OpsError(f"lost the connection to Redis while reading the queue: {exc}") from None
    return QueueSnapshot(depth=depth, started=started, failed=failed, workers=workers)


def watch(
    conn: redis.Redis,
    *,
    interval: float = 5.0,
    timeout: float = QUEUE_DRAIN_SECONDS,
    until_drained: bool = False,
    progress: Callable[[str], None] = say,
) -> WatchResult:
    """Sample the queue until it is drained (with ``until_drained``) or ``timeout`` passes."""
    started = time.monotonic()
    samples: list[QueueSnapshot] = []
    drained = False
    while True:
        snap = snapshot(conn)
        samples.append(snap)
        elapsed = time.monotonic() - started
        progress(f"[{elapsed:6.1f} s] {QUEUE_KEY}: {snap.line()}")
        if snap.depth == 0:
            drained = True
            if until_drained:
                break
        if elapsed >= timeout:
            break
        time.sleep(max(0.0, min(interval, timeout - elapsed)))
    return WatchResult(drained=drained, seconds=time.monotonic() - started, samples=samples)


def _cmd_status(args: argparse.Namespace) -> int:
    conn = connect(args.redis_url)
    snap = snapshot(conn, with_workers=True)
    say(f"Redis {redact_url(args.redis_url)} is reachable.")
    say(f"queue {QUEUE_NAME}: {snap.line()}")
    write_summary(
        f"### Queue `{QUEUE_NAME}`\n\n"
        + md_table(
            ("Depth", "Started", "Failed", "Workers"),
            [(snap.depth, snap.started, snap.failed, snap.workers)],
        )
    )
    if snap.workers == 0:
        say(f"warning: no worker is registered for {QUEUE_NAME}; jobs will not be processed.")
    return 0


def _cmd_watch(args: argparse.Namespace, until_drained: bool) -> int:
    conn = connect(args.redis_url)
    mode = "until drained" if until_drained else "for"
    say(f"Watching {QUEUE_KEY} every {args.interval:g} s {mode} (timeout {args.timeout:g} s)")
    result = watch(conn, interval=args.interval, timeout=args.timeout, until_drained=until_drained)
    rows = [(i + 1, s.depth, s.started, s.failed) for i, s in enumerate(result.samples)]
    verdict = "drained" if result.drained else "NOT drained"
    write_summary(
        f"### Queue `{QUEUE_NAME}` {verdict} ({result.seconds:.1f} s)\n\n"
        + md_table(("Sample", "Depth", "Started", "Failed"), rows[-20:])
    )
    if not result.drained:
        last = result.samples[-1]
        raise OpsError(
            f"the queue {QUEUE_NAME} was not drained within {args.timeout:g} s "
            f"({last.depth} jobs still waiting); check that workers are running "
            "(python -m ops.queue status)"
        )
    say(f"Queue {QUEUE_NAME} drained after {result.seconds:.1f} s.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.queue",
        description=f"Inspect the RQ queue {QUEUE_NAME} in Redis (depth, workers, failures).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis URL (default: $REDIS_URL or %(default)s)",
    )
    timing = argparse.ArgumentParser(add_help=False)
    timing.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    timing.add_argument(
        "--timeout",
        type=float,
        default=float(QUEUE_DRAIN_SECONDS),
        help="seconds to watch before giving up (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "status",
        parents=[common],
        help="depth, registered workers and failed jobs; checks Redis connectivity",
    )
    w = sub.add_parser("watch", parents=[common, timing], help="print the queue over time")
    w.add_argument(
        "--until-drained", action="store_true", help="stop as soon as the queue is empty"
    )
    sub.add_parser("drain", parents=[common, timing], help="watch --until-drained")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.queue", stream=sys.stderr)  # library warnings, off stdout
    try:
        if args.command == "status":
            return _cmd_status(args)
        return _cmd_watch(args, until_drained=args.command == "drain" or args.until_drained)
    except OpsError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
