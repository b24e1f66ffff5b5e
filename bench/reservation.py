"""What the Flow-token reservation costs per chat (issue 18, item 3), against a real Redis:
``python -m bench.reservation --redis-url redis://127.0.0.1:6379/15 [--chats 2000]``.

Per chat the API makes one round trip to reserve (one Lua script reserves the tokens and the
stored bytes, both or neither) and the worker one to settle; before, the API made one
``test`` (GET) and the worker one ``hit``. Prints the mean time of each step next to a bare
``PING`` (the floor: one round trip).
"""

from __future__ import annotations

import argparse
import time

import redis

from app.access.quotas import Quotas
from app.core.settings import load_settings


def _mean_ms(step, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        step(i)
    return (time.perf_counter() - started) * 1000 / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--chats", type=int, default=2000)
    args = parser.parse_args(argv)
    connection = redis.Redis.from_url(args.redis_url)
    quotas = Quotas(connection, load_settings(FLOW_TOKENS_PER_DAY=10**12))
    n = args.chats
    ping = _mean_ms(lambda _i: connection.ping(), n)
    reserve = _mean_ms(lambda i: quotas.reserve(f"bench-{i % 50}", 5000, 30000), n)
    settle = _mean_ms(lambda i: quotas.settle(f"bench-{i % 50}", 5000, 1200, f"job-{i}"), n)
    old_test = _mean_ms(lambda i: quotas._limiter.test(quotas.tokens, f"bench-{i % 50}"), n)
    for i in range(50):
        quotas.reset(f"bench-{i}")
    print(f"{n} chats against {args.redis_url.rsplit('@', 1)[-1]}")
    print(f"  PING (one round trip, the floor)      {ping:.3f} ms")
    print(f"  reserve (API, 1 script)                {reserve:.3f} ms")
    print(f"  settle (worker, 1 script)              {settle:.3f} ms")
    print(f"  before: limits test (API, 1 GET)       {old_test:.3f} ms")
    print(f"  added per chat: {reserve + settle - old_test:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
