"""One rebuild at a time, and only when it fits.

The lock protocol lives here only, used by the route that starts a rebuild
(``POST /api/documents/ingest``) and by the job that releases it when done.

The lock is a Redis key holding the rebuild job's id, with the job's timeout as its TTL (a lock
whose holder vanished without releasing expires at the latest then). A holder that is no longer
queued, scheduled or running (finished, failed, deleted) is stale and is cleared, but only if
the key still names it (WATCH), so a rebuild that started meanwhile keeps its lock.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.core.redis_clients import JOB_SERIALIZER
from app.ingest.limits import MB
from app.ingest.queueing import ACTIVE_JOB_STATES
from app.observability.metrics import directory_bytes

REBUILD_LOCK_KEY = "flowchat:ingest:rebuild"  # the running rebuild's job id
REBUILD_JOB_TIMEOUT = 6 * 3600


class RebuildLock:
    def __init__(self, connection: redis.Redis, *, ttl: int = REBUILD_JOB_TIMEOUT) -> None:
        self.redis = connection
        self.ttl = ttl

    def holder(self) -> str | None:
        value = self.redis.get(REBUILD_LOCK_KEY)
        return value.decode() if value is not None else None

    def running(self) -> Job | None:
        """The rebuild job holding the lock while it is waiting or running; a stale holder's
        lock is cleared and None returned."""
        holder = self.holder()
        if holder is None:
            return None
        try:
            job = Job.fetch(holder, connection=self.redis, serializer=JOB_SERIALIZER)
        except NoSuchJobError:
            job = None
        if job is not None and job.get_status() in ACTIVE_JOB_STATES:
            return job
        self.release(holder)
        return None

    def acquire(self, job_id: str) -> bool:
        """Take the lock for ``job_id``; False when another rebuild holds it."""
        return bool(self.redis.set(REBUILD_LOCK_KEY, job_id, nx=True, ex=self.ttl))

    def release(self, job_id: str) -> bool:
        """Free the lock if ``job_id`` still holds it (compare and delete, atomically)."""
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(REBUILD_LOCK_KEY)
                current = pipe.get(REBUILD_LOCK_KEY)
                if current is None or current.decode() != job_id:
                    return False
                pipe.multi()
                pipe.delete(REBUILD_LOCK_KEY)
                pipe.execute()
                return True
            except redis.WatchError:
                return False


REBUILD_SPACE_FACTOR = 1.2  # the new collection is about the size of the data now, plus margin


def rebuild_space_problem(path: Path) -> str | None:
    """Why a rebuild would not fit next to the current collection on the vector store volume,
    or None. A rebuild keeps the old collection serving until the switch, so it needs about the
    current data's size free. Only checked where the volume is visible (``make run``, one
    host); on Kubernetes Chroma's volume is its own pod's (see docs/runbook.md)."""
    if not path.is_dir():
        return None
    used = directory_bytes(path)
    need = int(used * REBUILD_SPACE_FACTOR)
    free = shutil.disk_usage(path).free
    if free >= need:
        return None
    return (
        f"a rebuild needs about {need / MB:,.0f} MB free on the vector store volume (the new "
        f"collection is built next to the current one, {used / MB:,.0f} MB); only "
        f"{free / MB:,.0f} MB are free. Grow the volume first (docs/runbook.md)"
    )
