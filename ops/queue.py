"""Inspect the job queues in Redis: the runbook's queue-depth and Redis-connectivity checks.

Both queues: chats (``flow_tasks``) and ingestion (``flow_ingest``), names from app.contracts.
Redis is reached with ``--stack staging|prod|local`` (``ops.stack``: port-forward and password
from the stack's Secret, or the file ``make run`` writes), or ``--redis-url`` with the password
in the URL or in ``REDIS_PASSWORD``.

Subcommands:

- ``status``: per queue, depth (``LLEN rq:queue:NAME``), workers registered, started and failed
  job counts. Exits 1 with one sentence when Redis is unreachable.
- ``watch``: print depth, started and failed counts of ``--queue`` every ``--interval`` seconds
  until ``--timeout``; with ``--until-drained`` stop as soon as the queue is empty. Exit 0 when
  the queue was drained within the timeout, 1 otherwise.
- ``drain``: ``watch --until-drained`` (after a worker restart the backlog drains within
  ``QUEUE_DRAIN_SECONDS``).
- ``failed list``: the failed jobs of each queue (id, function, when it ended, the last line
  of its error); ``failed clean --older-than 7d``: delete failed jobs that ended longer ago
  (``--dry-run`` only counts them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import BaseModel
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from app.contracts import (
    INGEST_QUEUE_NAME,
    QUEUE_DRAIN_SECONDS,
    QUEUE_NAME,
    REDIS_PASSWORD_SECRET,
)
from app.observability.logs import configure_logging
from ops.summary import OpsError, fail, md_table, say, write_summary

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUES = (QUEUE_NAME, INGEST_QUEUE_NAME)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def queue_key(name: str) -> str:
    return f"rq:queue:{name}"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``24h``, ``7d`` -> seconds (argparse type)."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use seconds or a number with s, m, h or d (e.g. 7d)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


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


def connect(url: str, timeout: float = 5.0, *, password: str | None = None) -> redis.Redis:
    """Open a Redis connection and PING it; raise OpsError with a clear sentence on failure.
    The password comes from ``password``, the URL or ``REDIS_PASSWORD`` (as for the service)."""
    password = password or os.environ.get(REDIS_PASSWORD_SECRET) or None
    try:
        conn = redis.Redis.from_url(
            url, password=password, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        conn.ping()
    except redis.exceptions.AuthenticationError:
        given = password or urlsplit(url).password
        what = "refused the password given" if given else "requires a password and none was given"
        raise OpsError(
            f"Redis at {redact_url(url)} {what}; use --stack, or set "
            f"{REDIS_PASSWORD_SECRET} to the stack's Redis password"
        ) from None
    except (redis.exceptions.RedisError, ValueError, OSError) as exc:
        hint = ""
        if "Authentication required" in str(exc) or "NOAUTH" in str(exc):
            hint = f"; use --stack, or set {REDIS_PASSWORD_SECRET} to the stack's Redis password"
        raise OpsError(f"Redis at {redact_url(url)} is unreachable: {exc}{hint}") from None
    return conn


def snapshot(
    conn: redis.Redis, *, with_workers: bool = False, queue_name: str = QUEUE_NAME
) -> QueueSnapshot:
    """Depth, started, failed (and optionally registered workers) of one queue."""
    try:
        queue = Queue(queue_name, connection=conn)
        depth = int(conn.llen(queue_key(queue_name)))
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
    queue_name: str = QUEUE_NAME,
) -> WatchResult:
    """Sample the queue until it is drained (with ``until_drained``) or ``timeout`` passes."""
    started = time.monotonic()
    samples: list[QueueSnapshot] = []
    drained = False
    while True:
        snap = snapshot(conn, queue_name=queue_name)
        samples.append(snap)
        elapsed = time.monotonic() - started
        progress(f"[{elapsed:6.1f} s] {queue_key(queue_name)}: {snap.line()}")
        if snap.depth == 0:
            drained = True
            if until_drained:
                break
        if elapsed >= timeout:
            break
        time.sleep(max(0.0, min(interval, timeout - elapsed)))
    return WatchResult(drained=drained, seconds=time.monotonic() - started, samples=samples)


class FailedJob(BaseModel):
    queue: str
    id: str
    func: str
    ended_at: datetime | None
    error: str


def failed_jobs(conn: redis.Redis, queue_name: str) -> list[FailedJob]:
    """The failed jobs of a queue, oldest first (the error's last line only)."""
    queue = Queue(queue_name, connection=conn)
    registry = FailedJobRegistry(queue=queue)
    jobs: list[FailedJob] = []
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is None:  # its hash expired: only the registry entry is left
            jobs.append(FailedJob(queue=queue_name, id=job_id, func="?", ended_at=None, error=""))
            continue
        info = (job.latest_result().exc_string if job.latest_result() else None) or ""
        lines = [line for line in info.strip().splitlines() if line.strip()]
        ended = job.ended_at.replace(tzinfo=UTC) if job.ended_at else None
        jobs.append(
            FailedJob(
                queue=queue_name,
                id=job_id,
                func=job.func_name or "?",
                ended_at=ended,
                error=lines[-1][:200] if lines else "",
            )
        )
    return sorted(jobs, key=lambda j: j.ended_at or datetime.min.replace(tzinfo=UTC))


def clean_failed(
    conn: redis.Redis,
    queue_name: str,
    older_than: float,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[FailedJob]:
    """Delete (job and registry entry) the failed jobs that ended more than ``older_than``
    seconds ago, or whose job hash is already gone; return them."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than)
    queue = Queue(queue_name, connection=conn)
    registry = FailedJobRegistry(queue=queue)
    old = [j for j in failed_jobs(conn, queue_name) if j.ended_at is None or j.ended_at < cutoff]
    if not dry_run:
        for item in old:
            job = queue.fetch_job(item.id)
            if job is None:
                conn.zrem(registry.key, item.id)
            else:
                registry.remove(job, delete_job=True)
    return old


@contextlib.contextmanager
def connection(args: argparse.Namespace) -> Iterator[tuple[redis.Redis, str]]:
    """(connection, description) from ``--stack`` or ``--redis-url``."""
    if args.stack:
        from ops.stack import resolve

        with resolve(args.stack, context=args.context, kubeconfig=args.kubeconfig) as target:
            conn = target.redis()
            try:
                yield conn, f"stack {target.name}"
            finally:
                conn.close()
        return
    conn = connect(args.redis_url)
    try:
        yield conn, redact_url(args.redis_url)
    finally:
        conn.close()


def _cmd_status(args: argparse.Namespace) -> int:
    with connection(args) as (conn, where):
        snaps = {name: snapshot(conn, with_workers=True, queue_name=name) for name in QUEUES}
    say(f"Redis of {where} is reachable.")
    for name, snap in snaps.items():
        say(f"queue {name}: {snap.line()}")
    write_summary(
        "### Queues\n\n"
        + md_table(
            ("Queue", "Depth", "Started", "Failed", "Workers"),
            [(n, s.depth, s.started, s.failed, s.workers) for n, s in snaps.items()],
        )
    )
    for name, snap in snaps.items():
        if snap.workers == 0:
            say(f"warning: no worker is registered for {name}; its jobs will not be processed.")
    return 0


def _cmd_watch(args: argparse.Namespace, until_drained: bool) -> int:
    name = args.queue
    with connection(args) as (conn, _where):
        mode = "until drained" if until_drained else "for"
        say(
            f"Watching {queue_key(name)} every {args.interval:g} s {mode} "
            f"(timeout {args.timeout:g} s)"
        )
        result = watch(
            conn,
            interval=args.interval,
            timeout=args.timeout,
            until_drained=until_drained,
            queue_name=name,
        )
    rows = [(i + 1, s.depth, s.started, s.failed) for i, s in enumerate(result.samples)]
    verdict = "drained" if result.drained else "NOT drained"
    write_summary(
        f"### Queue `{name}` {verdict} ({result.seconds:.1f} s)\n\n"
        + md_table(("Sample", "Depth", "Started", "Failed"), rows[-20:])
    )
    if not result.drained:
        last = result.samples[-1]
        raise OpsError(
            f"the queue {name} was not drained within {args.timeout:g} s "
            f"({last.depth} jobs still waiting); check that workers are running "
            "(python -m ops.queue status)"
        )
    say(f"Queue {name} drained after {result.seconds:.1f} s.")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "unknown"


def _cmd_failed(args: argparse.Namespace) -> int:
    names = [args.queue] if args.queue else list(QUEUES)
    with connection(args) as (conn, _where):
        try:
            if args.action == "list":
                found = [job for name in names for job in failed_jobs(conn, name)]
                for job in found:
                    say(f"{job.queue}  {job.id}  {_when(job.ended_at)}  {job.func}  {job.error}")
                say(f"{len(found)} failed job(s) in {', '.join(names)}.")
                write_summary(
                    "### Failed jobs\n\n"
                    + md_table(
                        ("Queue", "Job", "Ended", "Function", "Error"),
                        [(j.queue, j.id, _when(j.ended_at), j.func, j.error) for j in found],
                    )
                )
                return 0
            removed = [
                job
                for name in names
                for job in clean_failed(conn, name, args.older_than, dry_run=args.dry_run)
            ]
        except redis.exceptions.RedisError as exc:
            raise OpsError(
                f"lost the connection to Redis while reading failed jobs: {exc}"
            ) from None
    verb = "would delete" if args.dry_run else "deleted"
    where = ", ".join(names)
    say(f"{verb} {len(removed)} failed job(s) older than {args.older_than:g} s in {where}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ops.stack import add_stack_arguments

    parser = argparse.ArgumentParser(
        prog="python -m ops.queue",
        description=f"Inspect the RQ queues {QUEUE_NAME} (chats) and {INGEST_QUEUE_NAME} "
        "(ingestion) in Redis: depth, workers, failed jobs. Reach Redis with --stack "
        f"(no URL or password to assemble), or --redis-url with {REDIS_PASSWORD_SECRET} set "
        "(Redis requires a password in every stack).",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_stack_arguments(common)
    common.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="override: Redis URL (default: $REDIS_URL or %(default)s); the password comes "
        f"from the URL or ${REDIS_PASSWORD_SECRET}",
    )
    one = argparse.ArgumentParser(add_help=False)
    one.add_argument("--queue", choices=QUEUES, default=QUEUE_NAME, help="default: %(default)s")
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
        help="both queues: depth, registered workers, failed jobs; checks Redis connectivity",
    )
    w = sub.add_parser("watch", parents=[common, one, timing], help="print a queue over time")
    w.add_argument(
        "--until-drained", action="store_true", help="stop as soon as the queue is empty"
    )
    sub.add_parser("drain", parents=[common, one, timing], help="watch --until-drained")
    failed = sub.add_parser("failed", help="list or delete failed jobs")
    actions = failed.add_subparsers(dest="action", required=True)
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--queue", choices=QUEUES, help="one queue (default: both)")
    actions.add_parser("list", parents=[common, which], help="failed jobs of both queues")
    clean = actions.add_parser(
        "clean", parents=[common, which], help="delete failed jobs that ended long ago"
    )
    clean.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        help="age of the jobs to delete: seconds, or 30m, 24h, 7d",
    )
    clean.add_argument("--dry-run", action="store_true", help="only count them")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.queue", stream=sys.stderr)  # library warnings, off stdout
    try:
        if args.command == "status":
            return _cmd_status(args)
        if args.command == "failed":
            return _cmd_failed(args)
        return _cmd_watch(args, until_drained=args.command == "drain" or args.until_drained)
    except OpsError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
