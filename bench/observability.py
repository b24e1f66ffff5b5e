"""Overhead of structured logging and tracing per chat, exporter off and on, side by side.

    python bench/observability.py [--chats 100]

Starts three copies of the local service (as `make run` does: Redis, Chroma, the Flow emulator
at 0 ms latency so the service's own time is what is measured, one worker, the API) that differ
only in their observability settings:

* quiet: ``LOG_LEVEL=WARNING`` and no exporter (the floor: almost no line is written),
* default: ``LOG_LEVEL=INFO`` JSON lines, no exporter (what a stack runs without a collector),
* export: the same plus ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a loopback OTLP/HTTP
  collector in this process (every span recorded, batched and sent).

Chats are sent one at a time, rotating over the three services on every round so that noise
from the shared machine hits all three alike. Prints p50/p95 per service and the difference to
the floor, the log lines and exported spans per chat, and in-process unit costs (one log line,
one span) as a cross-check. Figures go to docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.local.stack import LocalStack, free_port
from bench.harness import (
    QUESTIONS,
    api_client,
    chat,
    emulate,
    p50_p95,
    print_table,
    service,
    warm_up,
)

# without an exporter only these spans are made (unrecorded): the POST and the GET request's
# server spans, the enqueue span and the job span; the httpx and Redis clients are not
# instrumented and the @traced functions skip their spans outside a recording trace
UNRECORDED_SPANS = 4


class Collector(BaseHTTPRequestHandler):
    """A loopback OTLP/HTTP receiver: counts the spans it is sent."""

    spans = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with Collector.lock:
            Collector.spans += count
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def timed_chat(client: httpx.Client, question: str) -> float:
    started = time.perf_counter()
    chat(client, question)
    return time.perf_counter() - started


def log_lines(stack: LocalStack) -> int:
    return sum(
        len((stack.root / "logs" / f"{name}.log").read_bytes().splitlines())
        for name in ("api", "worker")
    )


def unit_costs(n: int = 20000) -> dict[str, float]:
    """Microseconds per log line (JSON, ids bound) and per span (off / recorded)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from app.observability import tracing
    from app.observability.logs import bound, configure_logging

    class Discard(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    configure_logging("bench", fmt="json", stream=io.StringIO())
    log = logging.getLogger("flowchat.bench")
    costs: dict[str, float] = {}
    with bound(request_id="r" * 32, job_id="j" * 36, api_key_id="k-0123456789ab"):
        t = time.perf_counter()
        for i in range(n):
            log.info("job started", extra={"outcome": "finished", "duration_ms": i})
        costs["log line (JSON, ids bound)"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for i in range(n):
            log.debug("below the level %d", i)
        costs["log call below LOG_LEVEL"] = (time.perf_counter() - t) / n * 1e6
    tracing.configure_tracing("bench")
    tracer = tracing.tracer()
    t = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("job", kind=tracing.SpanKind.CONSUMER):
            pass
    costs["span, no exporter (not recorded)"] = (time.perf_counter() - t) / n * 1e6
    tracing.configure_tracing("bench", exporter=Discard(), batch=True)
    t = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("job", kind=tracing.SpanKind.CONSUMER):
            pass
    costs["span, recorded and batched"] = (time.perf_counter() - t) / n * 1e6
    tracing.shutdown()
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100, help="chats per service")
    args = parser.parse_args(argv)
    for name in [k for k in os.environ if k.startswith("OTEL_") or k in ("LOG_LEVEL",)]:
        del os.environ[name]
    os.environ["LOG_FORMAT"] = "json"

    server = HTTPServer(("127.0.0.1", free_port()), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    configs = {
        "quiet (WARNING, no exporter)": {"LOG_LEVEL": "WARNING"},
        "default (INFO JSON, no exporter)": {"LOG_LEVEL": "INFO"},
        "export (INFO JSON + OTLP)": {
            "LOG_LEVEL": "INFO",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    }
    stacks: dict[str, LocalStack] = {}
    clients: dict[str, httpx.Client] = {}
    with contextlib.ExitStack() as running:
        for label, env in configs.items():
            stack = running.enter_context(service(label, workers=1, env=env))
            stacks[label] = stack
            emulate(stack, latency_ms=0)
            clients[label] = running.enter_context(api_client(stack))
        for client in clients.values():  # warm up: model, clients, token
            warm_up(lambda i, c=client: chat(c, QUESTIONS[i % len(QUESTIONS)]), 5)
        time.sleep(1.0)  # let the warm-up's spans be exported before counting
        lines_before = {label: log_lines(stack) for label, stack in stacks.items()}
        spans_before = Collector.spans
        latencies: dict[str, list[float]] = {label: [] for label in configs}
        labels = list(configs)
        for i in range(args.chats):
            order = labels[i % 3 :] + labels[: i % 3]
            for label in order:
                latencies[label].append(timed_chat(clients[label], QUESTIONS[i % len(QUESTIONS)]))
        time.sleep(1.0)  # the last batch of spans
        spans = (Collector.spans - spans_before) / args.chats
        lines = {
            label: (log_lines(stack) - lines_before[label]) / args.chats
            for label, stack in stacks.items()
        }
    server.shutdown()

    floor, floor95 = p50_p95(latencies[labels[0]])
    print(f"\n{args.chats} chats per service, one at a time, Flow emulator at 0 ms\n")
    rows = []
    for label in labels:
        p50, p95 = p50_p95(latencies[label])
        rows.append(
            (
                label,
                f"{p50 * 1000:.1f} ms",
                f"{p95 * 1000:.1f} ms",
                f"{(p50 - floor) * 1000:+.1f} ms",
                f"{(p95 - floor95) * 1000:+.1f} ms",
                f"{lines[label]:.1f}",
                f"{spans:.1f}" if "OTLP" in label else "0",
            )
        )
    print_table(("service", "p50", "p95", "+p50", "+p95", "lines/chat", "spans/chat"), rows)
    costs = unit_costs()
    print("\nunit costs in this process:")
    for what, micros in costs.items():
        print(f"  {what:<36} {micros:>7.1f} µs")
    line, off, on = (
        costs["log line (JSON, ids bound)"],
        costs["span, no exporter (not recorded)"],
        costs["span, recorded and batched"],
    )
    extra_lines = lines[labels[1]] - lines[labels[0]]
    print(
        "\ncomputed per chat: logging "
        f"{extra_lines:.0f} more lines x {line:.0f} µs = {extra_lines * line / 1000:.2f} ms; "
        f"tracing without an exporter {UNRECORDED_SPANS} unrecorded spans x {off:.0f} µs = "
        f"{UNRECORDED_SPANS * off / 1000:.2f} ms, exported {spans:.0f} spans x {on:.0f} µs = "
        f"{spans * on / 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
