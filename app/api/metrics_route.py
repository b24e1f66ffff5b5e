"""``GET /metrics``: Prometheus text format, aggregated over every worker process.

With ``METRICS_PORT`` set (the stacks set it) the API process serves it on that port of its own
(:func:`serve`), which the Ingress does not route and the ServiceMonitor scrapes; without it
(``make run``) the API serves it on its own port.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server

from app.contracts import METRICS_PATH

router = APIRouter(tags=["metrics"])


@router.get(METRICS_PATH, include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


def serve(registry: CollectorRegistry, port: int | None) -> WSGIServer | None:
    """Serve ``registry`` on ``port`` (every interface: the pod's scrape port) in a thread of
    this process; None when no port is set. Stop it with ``.shutdown()`` and
    ``.server_close()``."""
    if port is None:
        return None
    server, _thread = start_http_server(port, registry=registry)
    return server
