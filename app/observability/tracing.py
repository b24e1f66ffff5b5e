"""OpenTelemetry tracing for one chat across the API, Redis/RQ, the worker, Chroma and Flow.

- :func:`configure_tracing` installs the SDK tracer provider once per process, with the httpx
  (Flow, Chroma) and Redis instrumentations; :func:`instrument_app` adds FastAPI's.
- Exporting is optional: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, spans go to that collector over OTLP/HTTP in
  batches. Without it nothing is recorded or exported and the httpx and Redis clients are not
  instrumented (they make most of a chat's spans); the few spans left are non-recording, but
  trace ids are still made and propagated, so log lines of one chat share their ``trace_id``.
- The sampler keeps a trace only when it starts at an entry point (an API request, a job) or
  continues a sampled parent (an incoming ``traceparent`` is honoured): Redis calls of an idle
  worker polling its queue are not traces.
- The trace context rides in the job's ``meta`` (:func:`enqueue` writes it, :func:`job_scope`
  reads it), so the job span is a child of the enqueue span, also when a worker is killed and
  the job is retried by another one (the meta stays with the job).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from app.contracts import METRICS_PATH, PING_PATH
from app.observability.logs import bound, current_ids, ids_from

log = logging.getLogger("flowchat.tracing")

TRACER_NAME = "flowchat"
SERVICE_PREFIX = "flowchat"
TRACE_META_KEY = "trace"  # job.meta[...]: the W3C trace context carrier
IDS_META_KEY = "log_ids"  # job.meta[...]: request_id, api_key_id, conversation_id
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXCLUDED_URLS = f"{PING_PATH},{METRICS_PATH}"  # probes and scrapes are not traces
ENTRY_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)

P = ParamSpec("P")
R = TypeVar("R")


class _State:
    provider: TracerProvider | None = None
    exporting: bool = False
    instrumented: bool = False


_state = _State()


class EntryPointSampler(Sampler):
    """Record only while exporting; then keep traces that start at a request or a job, and
    children of a sampled parent."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Any] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not _state.exporting:
            keep = False
        elif parent.is_valid:
            keep = parent.trace_flags.sampled
        else:
            keep = kind in ENTRY_KINDS
        if not keep:
            return SamplingResult(Decision.DROP, None, parent.trace_state if parent else None)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)

    def get_description(self) -> str:
        return "EntryPointSampler"


def exporter_endpoint() -> str | None:
    """The OTLP endpoint from the environment, or None (nothing is exported)."""
    for name in ENDPOINT_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def configure_tracing(
    service: str, *, exporter: SpanExporter | None = None, batch: bool | None = None
) -> TracerProvider:
    """Install the tracer provider of this process (once); the client instrumentations too
    when spans are exported.

    ``exporter`` is for tests (an in-memory exporter, exported synchronously); otherwise the
    OTLP/HTTP exporter is used when an endpoint is configured.
    """
    if _state.provider is None:
        resource = Resource.create({"service.name": f"{SERVICE_PREFIX}-{service}"})
        _state.provider = TracerProvider(resource=resource, sampler=EntryPointSampler())
        trace.set_tracer_provider(_state.provider)
    provider = _state.provider
    if exporter is None and exporter_endpoint() and not _state.exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads the endpoint, headers and timeout from OTEL_*
        batch = True if batch is None else batch
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        _state.exporting = True
    if _state.exporting and not _state.instrumented:  # ~30 spans a chat: only when kept
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
        RedisInstrumentor().instrument(tracer_provider=provider)
        _state.instrumented = True
    return provider


def instrument_app(app: Any) -> None:
    """FastAPI server spans (an incoming ``traceparent`` header becomes the parent)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_state.provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],  # one span per ASGI message is noise
    )


def shutdown() -> None:
    """Flush what is still batched (at process exit)."""
    if _state.provider is not None:
        _state.provider.force_flush()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.trace_id else None


def traced(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    on_result: Callable[[trace.Span, Any], None] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function with a span, only inside a recording trace (no cost otherwise)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not trace.get_current_span().is_recording():
                return fn(*args, **kwargs)
            with tracer().start_as_current_span(name, kind=kind) as span:
                result = fn(*args, **kwargs)
                if on_result is not None:
                    on_result(span, result)
                return result

        return inner

    return wrap


def usage_attributes(span: trace.Span, completion: Any) -> None:
    """Flow's token counts on the Flow call's span (OpenTelemetry's gen_ai names)."""
    usage = getattr(completion, "usage", None)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)


# --- across the queue ---------------------------------------------------------------------------


def job_meta() -> dict[str, Any]:
    """What a job's meta carries for the worker: the trace context and the log ids."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {TRACE_META_KEY: carrier, IDS_META_KEY: current_ids()}


def enqueue(queue: Any, func: str, *args: Any, **kwargs: Any) -> Any:
    """``queue.enqueue`` inside a producer span, with the trace context and log ids in the job's
    meta and a description without the arguments (RQ logs the description: no user text)."""
    short = func.rsplit(".", 1)[-1]
    with tracer().start_as_current_span(
        f"enqueue {short}",
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "rq", "messaging.destination.name": queue.name},
    ) as span:
        meta = {**(kwargs.pop("meta", None) or {}), **job_meta()}
        kwargs.setdefault("description", short)
        job = queue.enqueue(func, *args, meta=meta, **kwargs)
        span.set_attribute("messaging.message.id", job.id)
        with bound(job_id=job.id):
            log.info("job queued", extra={"queue": queue.name})
        return job


@dataclass
class JobRun:
    """One run of a job in a worker: its span and, once known, its outcome."""

    job: Any
    span: trace.Span
    outcome: str = "unknown"

    def finish(self, succeeded: bool) -> str:
        """Record finished, failed or retrying (RQ put it back in the queue) on the span."""
        if succeeded:
            self.outcome = "finished"
        else:
            status = str(self.job.get_status(refresh=True) or "")
            self.outcome = "retrying" if status in ("queued", "scheduled") else "failed"
            self.span.set_status(Status(StatusCode.ERROR, f"job {self.outcome}"))
        self.span.set_attribute("flowchat.job.outcome", self.outcome)
        return self.outcome


@contextmanager
def job_scope(job: Any) -> Iterator[JobRun]:
    """Run a job inside its consumer span (child of the enqueue span) with its ids bound."""
    meta = job.meta or {}
    parent = propagate.extract(meta.get(TRACE_META_KEY) or {})
    short = (job.func_name or "job").rsplit(".", 1)[-1]
    attributes = {
        "messaging.system": "rq",
        "messaging.message.id": job.id,
        "messaging.destination.name": job.origin or "",
        "flowchat.job.retries_left": int(job.retries_left or 0),
    }
    started = time.perf_counter()
    with (
        tracer().start_as_current_span(
            f"job {short}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span,
        bound(**{**ids_from(meta.get(IDS_META_KEY)), "job_id": job.id}),
    ):
        run = JobRun(job=job, span=span)
        log.info("job started")
        try:
            yield run
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info("job ended", extra={"outcome": run.outcome, "duration_ms": duration_ms})
