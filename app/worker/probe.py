"""Worker liveness/readiness probe: exit 0 when this pod's workers are alive in Redis.

    python -m app.worker.probe [--min-workers N] [--queue NAME]

Every worker of the pool beats `app.contracts.ALIVE_PREFIX + <worker name>` every few seconds
with a short TTL, and RQ registers each worker with the host it runs on (the pod name). The probe
finds the workers registered from this host (optionally only those listening to --queue) and exits 0
when at least --min-workers of them still have a live key; otherwise it prints one sentence and
exits 1 (a pod whose heartbeats stopped, e.g. a frozen process, is restarted). Exit 2: Redis is
unreachable (the readiness probe keeps the pod out; the liveness probe's failureThreshold gives
Redis time to come back).
"""

from __future__ import annotations

import argparse
import socket
import sys

import redis
from rq import Worker

from app.contracts import ALIVE_PREFIX
from app.core.settings import get_settings


def alive_workers(connection: redis.Redis, hostname: str, queue: str | None = None) -> list[str]:
    """Names of the workers registered from `hostname` whose alive key exists."""
    names = []
    for worker in Worker.all(connection=connection):
        if worker.hostname != hostname:
            continue
        if queue and queue not in worker.queue_names():
            continue
        if connection.exists(ALIVE_PREFIX + worker.name):
            names.append(worker.name)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-workers", type=int, default=1, help="alive workers needed")
    parser.add_argument("--queue", default=None, help="count only workers of this queue")
    parser.add_argument("--hostname", default=socket.gethostname(), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = get_settings()
    password = getattr(settings, "REDIS_PASSWORD", None)
    secret = password.get_secret_value() if password is not None else ""
    connection = redis.Redis.from_url(
        settings.REDIS_URL, password=secret or None, socket_timeout=3, socket_connect_timeout=3
    )
    try:
        alive = alive_workers(connection, args.hostname, args.queue)
    except redis.RedisError as exc:
        print(f"worker probe: cannot reach Redis ({type(exc).__name__})")
        return 2
    finally:
        connection.close()
    if len(alive) < args.min_workers:
        print(
            f"worker probe: {len(alive)} alive worker(s) on {args.hostname}, "
            f"need {args.min_workers}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
