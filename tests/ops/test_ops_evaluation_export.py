"""The evaluation scores pushed to a Pushgateway (a loopback stand-in that records the request
prometheus_client sends): job, namespace grouping, one gauge per gated score."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.contracts import EVAL_PUSH_JOB, METRIC_EVAL_SCORE
from ops.evaluation.export import push, score_label
from ops.evaluation.report import read_run

BASELINE = read_run(
    Path(__file__).resolve().parents[2] / "tests" / "data" / "eval" / "knowledge_base.baseline.json"
)


def test_score_labels_are_prometheus_label_values() -> None:
    assert score_label("hit@1") == "hit_at_1"
    assert score_label("answerable answered") == "answerable_answered"
    assert score_label("cites expected doc") == "cites_expected_doc"


def test_push_sends_every_score_under_the_stack_namespace() -> None:
    received: list[tuple[str, str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        push(f"http://127.0.0.1:{server.server_port}", "staging", BASELINE.summary)
    finally:
        server.shutdown()
    ((method, path, body),) = received
    assert (method, path) == ("PUT", f"/metrics/job/{EVAL_PUSH_JOB}/namespace/flowchat-staging")
    samples = {
        s.labels.get("score"): s.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == METRIC_EVAL_SCORE
        for s in family.samples
    }
    expected = {score_label(k): v for k, v in BASELINE.summary.gated().items()}
    assert samples == expected
    assert "flowchat_eval_last_run_timestamp_seconds" in body.decode()
