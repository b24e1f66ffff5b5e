"""One chat is one trace: API request -> enqueue -> job (its context read from the job's meta)
-> retrieval (embedding + Chroma query) -> Flow call, parented correctly, also when the first
worker is SIGKILLed mid-job and another finishes the retry. The Flow tokens it used are counted
per hashed API key, exactly as the emulator reported them.

The API (TestClient) and the finishing worker run in this process so an in-memory exporter
sees their spans; Redis, Chroma (with docs/ ingested) and the Flow emulator are the live
service's, on a queue of this test's own so the live workers never take its jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker
from rq.job import Job

from app.api.main import create_app
from app.contracts import CHAT_PATH, METRIC_FLOW_TOKENS
from app.core.settings import REPO_ROOT, get_settings, load_settings
from app.flow.token_estimate import estimate_prompt_tokens, estimate_tokens
from app.local.stack import free_port
from app.observability import tracing
from app.observability.logs import api_key_id
from app.observability.metrics import FlowchatCollector
from app.rag.prompt import Source, build_messages
from app.worker import runner as worker
from app.worker.resources import worker_resources

API_KEY = "trace-test-key-" + uuid.uuid4().hex[:8]
QUESTION = "How do I restart the worker?"


@dataclass
class TracedStack:
    client: TestClient
    exporter: InMemorySpanExporter
    queue: Queue
    connection: redis.Redis
    env: dict[str, str]

    def run_worker(self) -> None:
        """A FlowchatWorker in this process, until the queue is empty."""
        w = worker.FlowchatWorker([self.queue], connection=self.connection)
        w.work(burst=True)


@pytest.fixture
def traced_stack(live_service, monkeypatch: pytest.MonkeyPatch) -> Iterator[TracedStack]:
    queue_name = f"trace-test-{uuid.uuid4().hex[:8]}"
    env = {
        k: v
        for k, v in live_service.stack.env().items()
        if k.startswith(("REDIS_", "CHROMA_", "FLOW_", "VECTOR_", "DOCUMENTS_", "ADMIN_"))
    }
    env.update({"RQ_QUEUE": queue_name, "API_KEYS": API_KEY, "FLOW_MAX_RETRIES": "0"})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    worker_resources.cache_clear()
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("test", exporter=exporter, batch=False)
    connection = redis.Redis.from_url(live_service.redis_url)
    try:
        with TestClient(create_app(load_settings()), headers={"X-API-Key": API_KEY}) as client:
            yield TracedStack(
                client=client,
                exporter=exporter,
                queue=Queue(queue_name, connection=connection),
                connection=connection,
                env=env,
            )
    finally:
        tracing._state.exporting = False  # later tests record nothing
        live_service.emulator.reset()
        get_settings.cache_clear()
        worker_resources.cache_clear()
        connection.close()


def _submit(stack: TracedStack) -> str:
    response = stack.client.post(CHAT_PATH, json={"message": QUESTION})
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"]
    return response.json()["id"]


def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = _by_name(spans, name)
    assert len(found) == 1, f"expected one {name!r} span, got {[s.name for s in spans]}"
    return found[0]


def _check_one_trace(stack: TracedStack, job_id: str, *, retries_left: int) -> ReadableSpan:
    """The spans of the chat's trace are parented API -> enqueue -> job -> retrieval/Flow."""
    spans = list(stack.exporter.get_finished_spans())
    enqueue = next(
        s
        for s in spans
        if s.name == "enqueue answer_chat" and s.attributes.get("messaging.message.id") == job_id
    )
    trace_id = enqueue.context.trace_id
    chat = [s for s in spans if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in chat}

    server = next(s for s in chat if s.kind == SpanKind.SERVER)
    assert server.attributes.get("http.route") == CHAT_PATH
    # the enqueue span sits under the API request (possibly below its internal spans)
    parent = enqueue.parent
    while parent is not None and parent.span_id != server.context.span_id:
        parent = by_id[parent.span_id].parent
    assert parent is not None, "the enqueue span is not inside the API request's span"

    job = _one(chat, "job answer_chat")
    assert job.kind == SpanKind.CONSUMER
    assert job.parent is not None and job.parent.span_id == enqueue.context.span_id
    assert job.attributes["messaging.message.id"] == job_id
    assert job.attributes["flowchat.job.outcome"] == "finished"
    assert job.attributes["flowchat.job.retries_left"] == retries_left

    retrieval = _one(chat, "retrieval")
    assert retrieval.parent.span_id == job.context.span_id
    for name in ("embedding", "chroma query"):
        assert _one(chat, name).parent.span_id == retrieval.context.span_id
    flow = _one(chat, "flow chat")
    assert flow.parent.span_id == job.context.span_id
    flow_http = [s for s in chat if s.parent and s.parent.span_id == flow.context.span_id]
    assert any(s.kind == SpanKind.CLIENT and "POST" in s.name for s in flow_http)
    return flow


def _token_counts(connection: redis.Redis, queue: str) -> dict[tuple[str, str], float]:
    collector = FlowchatCollector(connection, queue, None)
    family = next(
        f for f in collector.collect() if f.name == METRIC_FLOW_TOKENS.removesuffix("_total")
    )
    return {
        (s.labels["kind"], s.labels["key"]): s.value
        for s in family.samples
        if s.name == METRIC_FLOW_TOKENS
    }


def test_one_chat_is_one_trace_and_its_tokens_are_counted(traced_stack: TracedStack) -> None:
    key = api_key_id(API_KEY)
    before = _token_counts(traced_stack.connection, traced_stack.queue.name)
    job_id = _submit(traced_stack)
    traced_stack.run_worker()
    answer = traced_stack.client.get(f"{CHAT_PATH}/{job_id}", params={"wait": 5}).json()
    assert answer["status"] == "finished", answer

    flow = _check_one_trace(traced_stack, job_id, retries_left=2)

    # the emulator's usage, recomputed from what the worker sent and got back ...
    sources = [Source.model_validate(s) for s in answer["sources"]]
    messages = build_messages(QUESTION, sources)
    prompt = estimate_prompt_tokens(m["content"] for m in messages)
    completion = estimate_tokens(answer["answer"])
    assert flow.attributes["gen_ai.usage.input_tokens"] == prompt
    assert flow.attributes["gen_ai.usage.output_tokens"] == completion
    # ... is what the metric counted for this key
    after = _token_counts(traced_stack.connection, traced_stack.queue.name)
    assert after[("prompt", key)] - before.get(("prompt", key), 0) == prompt
    assert after[("completion", key)] - before.get(("completion", key), 0) == completion


def test_the_retry_of_a_killed_workers_job_continues_the_same_trace(
    traced_stack: TracedStack, live_service
) -> None:
    env = {**live_service.stack.env(), **traced_stack.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.worker", "--workers", "1"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    connection = traced_stack.connection
    try:
        deadline = time.monotonic() + 90
        while not Worker.all(queue=traced_stack.queue):
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.2)
        live_service.emulator.configure(latency_ms=15000)  # the job hangs in the Flow call
        calls = live_service.emulator.stats()["chat_calls"]
        job_id = _submit(traced_stack)
        deadline = time.monotonic() + 60
        while live_service.emulator.stats()["chat_calls"] == calls:
            assert time.monotonic() < deadline, "the first worker never called Flow"
            time.sleep(0.05)
        job = Job.fetch(job_id, connection=connection)
        assert job.get_status() == "started"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for dead in Worker.all(queue=traced_stack.queue):  # the killed one's registration
            dead.register_death()
    live_service.emulator.reset()
    connection.delete(worker.ALIVE_PREFIX + (job.worker_name or ""))  # its beat has stopped
    assert worker.sweep_abandoned(connection, traced_stack.queue.name, grace=0) == [job_id]

    traced_stack.run_worker()
    answer = traced_stack.client.get(f"{CHAT_PATH}/{job_id}", params={"wait": 5}).json()
    assert answer["status"] == "finished", answer
    # the killed run exported nothing; the retry's job span hangs under the same enqueue span
    _check_one_trace(traced_stack, job_id, retries_left=1)


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("test", exporter=exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing._state.exporting = False


def test_an_incoming_traceparent_is_honoured(span_exporter: InMemorySpanExporter) -> None:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with TestClient(create_app(load_settings())) as client:
        response = client.get(
            "/openapi.json", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
        )
        client.get("/openapi.json")  # and without one, a new trace
    assert response.status_code == 200
    servers = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(servers) == 2
    first, second = servers
    assert format(first.context.trace_id, "032x") == trace_id
    assert first.parent is not None and format(first.parent.span_id, "016x") == parent_id
    assert format(second.context.trace_id, "032x") != trace_id and second.parent is None


def test_spans_outside_a_request_or_job_are_not_kept(span_exporter: InMemorySpanExporter) -> None:
    """An idle worker's Redis polling is no trace; a request or a job is."""
    connection = redis.Redis(  # a client span without a parent; fail fast, no retries
        port=1, socket_connect_timeout=0.01, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.RedisError):
        connection.ping()
    with tracing.tracer().start_as_current_span("job x", kind=SpanKind.CONSUMER):
        pass
    assert [s.name for s in span_exporter.get_finished_spans()] == ["job x"]


OTLP_CHILD = """
import sys
from app.observability import tracing
tracing.configure_tracing("otlp-test")
with tracing.tracer().start_as_current_span("request", kind=tracing.SpanKind.SERVER):
    with tracing.tracer().start_as_current_span("inner"):
        print(tracing.current_trace_id(), flush=True)
tracing.shutdown()
print("exporting" if tracing._state.exporting else "not exporting", flush=True)
"""


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _run_child(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", OTLP_CHILD],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_spans_go_to_the_otlp_endpoint_only_when_one_is_set() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    _Collector.received = []
    server = HTTPServer(("127.0.0.1", free_port()), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    try:
        without = _run_child(base)
        assert without[1:] == ["not", "exporting"] and _Collector.received == []
        endpoint = f"http://127.0.0.1:{server.server_port}"
        trace_id, state = _run_child({**base, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    finally:
        server.shutdown()
    assert state == "exporting"
    names, trace_ids = [], set()
    for body in _Collector.received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "flowchat-otlp-test"
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    names.append(span.name)
                    trace_ids.add(span.trace_id.hex())
    assert sorted(names) == ["inner", "request"]
    assert trace_ids == {trace_id}


def test_a_job_runs_with_its_own_id_and_the_ids_its_meta_carried() -> None:
    from types import SimpleNamespace

    from structlog.contextvars import get_contextvars

    from app.observability.logs import current_ids

    job = SimpleNamespace(
        id="job-2",
        func_name="app.worker.answer_chat",
        origin="flow_tasks",
        retries_left=2,
        meta={tracing.IDS_META_KEY: {"request_id": "r-1", "job_id": "job-1", "other": "x"}},
    )
    with tracing.job_scope(job):
        ids = get_contextvars()
        assert ids["job_id"] == "job-2" and ids["request_id"] == "r-1"
        assert "other" not in ids
        assert current_ids() == {"request_id": "r-1"}  # what a job enqueued here would carry
    assert "job_id" not in get_contextvars()


def test_a_chat_carries_its_conversation_id_into_the_worker_lines(redis_url: str) -> None:
    """Issue 12's conversations: the id is in the job's meta (bound around the enqueue only)
    and bound again in the job scope, so the worker's lines of a follow-up carry it."""
    from structlog.contextvars import get_contextvars

    from app.chat.jobs import submit_chat

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"test-conv-{uuid.uuid4().hex[:8]}", connection=connection)
    job = submit_chat(queue, get_settings(), "how do I undo that?", None, conversation_id="c-42")
    assert "conversation_id" not in get_contextvars()  # the API request's context is untouched
    stored = Job.fetch(job.id, connection=connection)
    assert stored.meta[tracing.IDS_META_KEY]["conversation_id"] == "c-42"
    assert stored.meta["kind"] == "chat"  # the caller's meta is kept next to the trace's
    with tracing.job_scope(stored):
        assert get_contextvars()["conversation_id"] == "c-42"
    queue.empty()
