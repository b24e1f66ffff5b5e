"""``GET /metrics``: Prometheus text format, aggregated over every worker process."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.contracts import METRICS_PATH

router = APIRouter(tags=["metrics"])


@router.get(METRICS_PATH, include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
