"""What every job of a chat worker process shares, loaded once per process.

The settings, one Redis client, the Chroma store, the Flow client (one connection pool, one
cached token), the metrics writer, the maintenance tracker and the quotas. The single-threaded
worker (:mod:`app.worker.runner`) and the threaded one (:mod:`app.worker.threads`) both load
them from here before their first job, so neither reaches into the other's private names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import redis

from app.access.quotas import Quotas
from app.core.maintenance import MaintenanceTracker
from app.core.redis_clients import redis_client
from app.core.settings import Settings, get_settings
from app.flow.client import FlowClient
from app.observability.metrics import MetricsRecorder
from app.rag.vectorstore import VectorStore


@dataclass
class WorkerResources:
    """The clients a chat job uses, shared by every job (and every thread) of one process."""

    settings: Settings
    redis: redis.Redis
    store: VectorStore
    flow: FlowClient
    metrics: MetricsRecorder
    maintenance: MaintenanceTracker
    quotas: Quotas


@cache
def worker_resources() -> WorkerResources:
    """This process's shared resources (built on first call; ``cache_clear()`` rebuilds them)."""
    settings = get_settings()
    connection = redis_client(settings)
    metrics = MetricsRecorder(connection)
    return WorkerResources(
        settings=settings,
        redis=connection,
        store=VectorStore.from_settings(settings),
        flow=FlowClient.from_settings(settings, on_request=metrics.flow_request),
        metrics=metrics,
        maintenance=MaintenanceTracker(connection, settings.MAINTENANCE_AFTER_FAILURES),
        quotas=Quotas(connection, settings),
    )
