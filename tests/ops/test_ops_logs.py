"""ops.logs: one chat's lines from several processes' logs, JSON or console, kubectl prefixes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ops import logs

JOB = "3f2a9c1e-0000-4000-8000-000000000001"
OTHER = "99999999-0000-4000-8000-000000000002"
T = "2026-12-01T07:00:00."


def _line(ts: str, process: str, message: str, **ids: str) -> str:
    return json.dumps(
        {"timestamp": ts, "level": "info", "logger": "t", "process": process, "message": message}
        | ids
    )


API = [
    _line(T + "100Z", "api", "request", request_id="r1", trace_id="t1"),
    _line(
        "2026-12-01T07:00:00.050Z", "api", "job queued", request_id="r1", job_id=JOB, trace_id="t1"
    ),
    _line(
        "2026-12-01T07:00:00.060Z",
        "api",
        "job queued",
        request_id="r9",
        job_id=OTHER,
        trace_id="t9",
    ),
    "not a log line",
    _line("2026-12-01T07:00:01.000Z", "api", "request", request_id="r2", job_id=JOB, trace_id="t2"),
]
WORKER = [
    _line(T + "070Z", "worker", f"Worker w: flow_tasks: answer_chat ({JOB})"),
    _line(T + "080Z", "worker", "job started", job_id=JOB, trace_id="t1"),
    _line(T + "090Z", "worker", "embedding", trace_id="t1"),
    _line(T + "095Z", "worker", "job started", job_id=OTHER, trace_id="t9"),
]


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    api, worker = tmp_path / "api.log", tmp_path / "worker.log"
    api.write_text("\n".join(API) + "\n")
    worker.write_text("\n".join(WORKER) + "\n")
    return [str(api), str(worker)]


def test_a_jobs_lines_from_every_process_in_time_order(files, capsys) -> None:
    assert logs.main(["--job", JOB, *files]) == 0
    out = capsys.readouterr()
    shown = [json.loads(line) for line in out.out.splitlines()]
    assert [r["message"] for r in shown] == [
        "job queued",
        f"Worker w: flow_tasks: answer_chat ({JOB})",
        "job started",
        "embedding",  # no job id, but the chat's trace id
        "request",  # the request that enqueued it (its request id)
        "request",  # a later read of the answer (names the job)
    ]
    assert all(OTHER not in json.dumps(r) and r.get("trace_id") != "t9" for r in shown)
    assert "6 line(s) of job" in out.err and "api: 3" in out.err and "worker: 3" in out.err


def test_by_request_or_trace(files, capsys) -> None:
    assert logs.main(["--trace", "t9", *files]) == 0
    assert {json.loads(x)["job_id"] for x in capsys.readouterr().out.splitlines()} == {OTHER}
    assert logs.main(["--request", "r2", *files]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_standard_input_with_kubectl_prefixes_and_console_lines(monkeypatch, capsys) -> None:
    text = "\n".join(
        [
            f"[pod/flowchat-api-7d9/api] {API[1]}",
            f"[pod/flowchat-worker-5c/worker] {WORKER[1]}",
            "2026-12-01T07:00:00.085Z [info     ] job ended    [flowchat.tracing] "
            f"job_id={JOB} outcome=finished process=worker",
        ]
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))
    assert logs.main(["--job", JOB, "--format", "pretty"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert "job queued" in out[0] and "job started" in out[1]
    assert "flowchat.tracing: job ended" in out[2] and "outcome=finished" in out[2]


def test_nothing_found_is_one_sentence_and_exit_1(files, capsys) -> None:
    assert logs.main(["--job", "no-such-job", *files]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no log line mentions job no-such-job among 8 structured lines")


def test_a_missing_file_is_named(tmp_path: Path, capsys) -> None:
    assert logs.main(["--job", JOB, str(tmp_path / "nope.log")]) == 1
    assert "nope.log is not a readable file" in capsys.readouterr().err


def test_an_id_is_required(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        logs.main([])
    assert exc.value.code == 2
