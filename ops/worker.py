"""Restart the chat workers and watch the backlog drain: the runbook's "Restart Worker".

``python -m ops.worker restart (--stack S | --namespace NS) [--context CTX] [--redis-url URL]``

``--stack`` or ``--namespace`` is required: there is no default stack, so a restart never lands on
staging (or prod) by omission.

1. ``kubectl rollout restart`` of the worker Deployment (``app.contracts.WORKER_DEPLOYMENT``);
2. wait for the rollout to complete;
3. with ``--redis-url`` (e.g. through ``kubectl port-forward svc/redis 6379``), watch
   ``rq:queue:flow_tasks`` until it is drained, within ``QUEUE_DRAIN_SECONDS``; without it the
   drain check is skipped with a note.

Docker Compose users restart with ``docker compose restart worker`` and then run
``python -m ops.queue drain``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kubernetes import client

from app.contracts import QUEUE_DRAIN_SECONDS, WORKER_DEPLOYMENT, namespace_for
from app.observability.logs import configure_logging
from ops import kube
from ops.queue import connect, watch
from ops.summary import OpsError, fail, md_table, say, write_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.worker",
        description="Operate the chat workers in Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "restart", help="rollout-restart the worker deployment, wait, then watch the queue drain"
    )
    r.add_argument(
        "--stack", choices=("staging", "prod"), help="the stack (or give --namespace); required"
    )
    r.add_argument("--namespace", help="Kubernetes namespace (default: flowchat-<stack>)")
    r.add_argument("--context", help="kubeconfig context (default: in-cluster or current)")
    r.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    r.add_argument(
        "--redis-url",
        default=os.environ.get("FLOWCHAT_REDIS_URL"),
        help="Redis URL to watch the queue drain, password in $REDIS_PASSWORD (default: "
        "$FLOWCHAT_REDIS_URL; none: skip; or run `python -m ops.queue drain --stack STACK`)",
    )
    r.add_argument("--rollout-timeout", type=float, default=300.0)
    r.add_argument("--drain-timeout", type=float, default=float(QUEUE_DRAIN_SECONDS))
    r.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    return parser


def restart_workers(
    apps: client.AppsV1Api,
    namespace: str,
    *,
    redis_url: str | None,
    rollout_timeout: float,
    drain_timeout: float,
    interval: float,
) -> list[tuple[str, str]]:
    """The three steps; returns (step, detail) rows; raises OpsError on the first failure."""
    rows: list[tuple[str, str]] = []
    stamp = kube.restart_deployment(apps, WORKER_DEPLOYMENT, namespace)
    say(f"Restarted {namespace}/{WORKER_DEPLOYMENT} (restartedAt {stamp}); waiting for rollout")
    rows.append(("restart", stamp))
    state = kube.wait_for_rollout(
        apps, WORKER_DEPLOYMENT, namespace, timeout=rollout_timeout, interval=interval
    )
    rows.append(("rollout", state))
    if not redis_url:
        say("note: no --redis-url given; skipping the queue drain check")
        rows.append(("queue drain", "skipped (no --redis-url)"))
        return rows
    result = watch(connect(redis_url), interval=interval, timeout=drain_timeout, until_drained=True)
    if not result.drained:
        raise OpsError(
            f"the workers restarted but the queue was not drained within {drain_timeout:g} s "
            f"({result.samples[-1].depth} jobs waiting)"
        )
    say(f"Queue drained after {result.seconds:.1f} s.")
    rows.append(("queue drain", f"drained in {result.seconds:.1f} s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("ops.worker", stream=sys.stderr)  # library warnings, off stdout
    if not (args.stack or args.namespace):
        parser.error("restart: one of --stack or --namespace is required (no default stack)")
    namespace = args.namespace or namespace_for(args.stack)
    try:
        api = kube.load_api_client(args.context, args.kubeconfig)
        rows = restart_workers(
            client.AppsV1Api(api),
            namespace,
            redis_url=args.redis_url,
            rollout_timeout=args.rollout_timeout,
            drain_timeout=args.drain_timeout,
            interval=args.interval,
        )
    except OpsError as exc:
        write_summary(f"### Worker restart in {namespace} FAILED\n\n{exc}\n")
        return fail(str(exc))
    write_summary(f"### Worker restart in {namespace}\n\n" + md_table(("Step", "Detail"), rows))
    say(f"Worker restart in {namespace} complete.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
