"""The Chroma server's environment (``app.contracts.CHROMA_SERVER_ENV``): chromadb's server, as
`make run`, compose and the stacks start it, builds no request spans (issue 25: they cost ~15 %
of its CPU per query and were never exported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.contracts import CHROMA_SERVER_APP, CHROMA_SERVER_ENV

# chromadb's server app under a tracer provider that keeps every finished span: the names of
# the spans three heartbeat requests produced
PROBE = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

kept = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(kept))
trace.set_tracer_provider(provider)
module, name = sys.argv[1].split(":")
app = getattr(__import__(module, fromlist=[name]), name)
with TestClient(app) as client:
    for _ in range(3):
        assert client.get("/api/v2/heartbeat").status_code == 200
print(json.dumps([span.name for span in kept.get_finished_spans()]))
"""


def _spans(tmp_path: Path, extra: dict[str, str]) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "IS_PERSISTENT": "TRUE",
        "PERSIST_DIRECTORY": str(tmp_path / "chroma"),
        **extra,
    }
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, CHROMA_SERVER_APP],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    return json.loads(ran.stdout.strip().splitlines()[-1])


def test_the_chroma_server_builds_no_request_spans_with_its_environment(tmp_path: Path) -> None:
    # without it, chromadb's OpenTelemetry middleware builds spans for every request (a server
    # span and its "http send" children), exporter or not: the probe sees them
    assert any(name.startswith("GET /api/v2/heartbeat") for name in _spans(tmp_path, {}))
    assert _spans(tmp_path, CHROMA_SERVER_ENV) == []
