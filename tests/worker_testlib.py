"""An RQ worker for tests that run queued jobs in their own process (imported by basename, like
the other ``*_testlib`` modules)."""

from __future__ import annotations

from rq import SimpleWorker

from app.worker.runner import FlowchatWorker


class BurstWorker(SimpleWorker):
    """RQ's SimpleWorker with the service's command listener
    (app.worker.runner.PUBSUB_POLL_SECONDS): RQ's own sleeps 60 s between reads and redis-py 8
    waits for it when the worker leaves, so a burst of a few jobs took a minute more."""

    subscribe = FlowchatWorker.subscribe
