"""app.observability.logs: one JSON object per line with the chat's ids, foreign loggers included,
secrets blanked; and, through the real stack, API and worker lines of one chat joined by
job_id and trace_id without the question or any secret in any log."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.core.settings import get_settings
from app.observability.logs import (
    ANONYMOUS_KEY,
    api_key_id,
    bind,
    bound,
    clear_ids,
    configure_logging,
    current_ids,
)
from ops import logs as ops_logs


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setenv("FLOW_AGENT_SECRET", "s3cret-agent-value")
    monkeypatch.setenv("REDIS_URL", "redis://:r3dis-password@127.0.0.1:6379/0")
    get_settings.cache_clear()
    out = io.StringIO()
    configure_logging("test", fmt="json", stream=out)
    yield out
    get_settings.cache_clear()
    configure_logging("test", fmt="json")  # back to stdout for later tests


def _lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_bound_ids(stream: io.StringIO) -> None:
    with bound(request_id="req-1", job_id="job-1", api_key_id=None):
        logging.getLogger("flowchat.test").info(
            "hello %s", "there", extra={"outcome": "ok", "question": "never shown"}
        )
    logging.getLogger("flowchat.test").warning("after")
    first, second = _lines(stream)
    assert list(first)[:5] == ["timestamp", "level", "logger", "process", "message"]
    assert first["message"] == "hello there"
    assert first["level"] == "info" and first["logger"] == "flowchat.test"
    assert first["request_id"] == "req-1" and first["job_id"] == "job-1"
    assert first["outcome"] == "ok"
    assert "question" not in first  # only known fields ride along with extra=
    assert "api_key_id" not in first  # unknown ids are left out, not null
    assert "job_id" not in second and second["level"] == "warning"


def test_rq_and_uvicorn_loggers_come_through_the_same_handler(
    stream: io.StringIO,
) -> None:
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.addHandler(logging.StreamHandler(io.StringIO()))  # what RQ does on its own
    rq_logger.propagate = False
    configure_logging("test", fmt="json", stream=stream)
    rq_logger.info("Worker w1: started")
    logging.getLogger("uvicorn.error").info("Started server process")
    loggers = [line["logger"] for line in _lines(stream)]
    assert loggers == ["rq.worker", "uvicorn.error"]


def test_log_level_is_the_floor_for_every_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    out = io.StringIO()
    configure_logging("test", fmt="json", stream=out)
    logging.getLogger("rq.worker").setLevel(logging.INFO)  # as RQ's worker does at start
    logging.getLogger("rq.worker").info("Worker w1: started")
    logging.getLogger("rq.worker").warning("cold shut down")
    configure_logging("test", fmt="json")
    assert [line["message"] for line in _lines(out)] == ["cold shut down"]


def test_known_secrets_are_blanked(stream: io.StringIO) -> None:
    log = logging.getLogger("flowchat.test")
    log.warning("connecting with s3cret-agent-value to redis://:r3dis-password@host")
    try:
        raise RuntimeError("token s3cret-agent-value refused")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert "s3cret-agent-value" not in text and "r3dis-password" not in text
    assert text.count("***") >= 3


def test_console_format_for_people(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    configure_logging("test", fmt="console", stream=out)
    with bound(job_id="job-7"):
        logging.getLogger("flowchat.test").info("readable")
    line = out.getvalue().strip()
    configure_logging("test", fmt="json")
    assert not line.startswith("{")
    assert "readable" in line and "job_id=job-7" in line
    # ops.logs reads these lines too
    assert ops_logs.parse(line)["job_id"] == "job-7"


def test_auto_format_is_json_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "auto")
    out = io.StringIO()  # not a terminal
    configure_logging("test", stream=out)
    logging.getLogger("flowchat.test").info("x")
    configure_logging("test", fmt="json")
    assert json.loads(out.getvalue())["message"] == "x"


def test_context_helpers() -> None:
    assert api_key_id(None) == ANONYMOUS_KEY
    assert api_key_id("abc") == api_key_id("abc") != api_key_id("abd")
    assert "abc" not in api_key_id("abc")
    with bound(request_id="r", conversation_id="c"):
        bind(job_id="j", api_key_id="k-1")
        # a job enqueued here carries the request's ids, not the enclosing job's id
        assert current_ids() == {"request_id": "r", "conversation_id": "c", "api_key_id": "k-1"}
    clear_ids()
    assert current_ids() == {}


def test_a_chat_through_the_real_stack_is_joined_by_job_and_trace_ids(
    live_service, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = f"zebra-{uuid.uuid4().hex[:10]}"
    question = f"How do I restart the worker? {marker}"
    with httpx.Client(base_url=live_service.base_url, timeout=60) as client:
        accepted = client.post("/api/chat", json={"message": question})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        request_id = accepted.headers["x-request-id"]
        answer = live_service.answer(client, job_id)
    assert answer["status"] == "finished", answer

    logs = live_service.stack.root / "logs"

    def read(name: str) -> list[dict]:
        # the processes keep writing: a last line without its newline is still being written
        # (and may end inside a multi-byte character)
        text = (logs / f"{name}.log").read_bytes().decode("utf-8", errors="replace")
        complete = text.rpartition("\n")[0]
        return [json.loads(line) for line in complete.splitlines()]  # every line is JSON

    # the worker logs "job ended" just after it stores the answer (a polling limit, not a timing)
    deadline = time.monotonic() + 120
    while not any(
        r.get("job_id") == job_id and r["message"] == "job ended" for r in read("worker")
    ):
        assert time.monotonic() < deadline, "the worker never logged the end of the job"
        time.sleep(0.1)
    by_process = {name: read(name) for name in ("api", "worker", "ingest-worker")}
    api = [r for r in by_process["api"] if r.get("job_id") == job_id]
    work = [r for r in by_process["worker"] if r.get("job_id") == job_id]
    assert api and work, "the job id is missing from the API's or the worker's lines"
    queued = next(r for r in api if r["message"] == "job queued")
    assert queued["request_id"] == request_id
    assert {r["trace_id"] for r in work} == {queued["trace_id"]}
    assert {r["request_id"] for r in work} == {request_id}
    assert any(r["message"] == "job ended" and r["outcome"] == "finished" for r in work)
    usage = next(r for r in work if r["message"] == "flow usage")
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0

    # nothing a user typed and no secret in any output of any process
    env = live_service.stack.env()
    secrets = {
        "admin token": live_service.admin_token,
        "FLOW_AGENT_SECRET": env["FLOW_AGENT_SECRET"],
    }
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(errors="replace")
        assert marker not in text, f"the question's text is in {path.name}"
        for what, value in secrets.items():
            assert value and value not in text, f"the {what} is in {path.name}"

    # ops.logs puts the chat's lines from both processes together, in time order
    code = ops_logs.main(["--job", job_id, str(logs / "worker.log"), str(logs / "api.log")])
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert {r["process"] for r in shown} == {"api", "worker"}
    assert [r["timestamp"] for r in shown] == sorted(r["timestamp"] for r in shown)
    assert any(r.get("request_id") == request_id and r["process"] == "api" for r in shown)


def test_the_settings_are_app_settings_a_stack_may_set() -> None:
    from app.core.settings import Settings, SettingsError, load_settings
    from stacks.config import validate_app_env

    assert {"LOG_FORMAT", "LOG_LEVEL", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= set(Settings.model_fields)
    env = {"LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    assert validate_app_env(env) == env
    # the collector comes from flowchat:otlpEndpoint, which also opens the pods' egress to it
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_ENDPOINT is set by the stack"):
        validate_app_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings(LOG_FORMAT="xml")


def test_every_secret_setting_and_each_key_of_the_key_file_is_blanked(tmp_path) -> None:
    """The list comes from the settings' secret fields (any SecretStr), not from names."""
    from app.core.settings import load_settings

    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nfile-key-number-one\nfile-key-number-two\n")
    settings = load_settings(
        REDIS_PASSWORD="redis-password-value",
        API_KEYS="env-key-value",
        API_KEYS_FILE=str(key_file),
        ADMIN_TOKEN="admin-token-value",
        KEY_ID_SECRET="key-id-secret-value",
        FLOW_AGENT_SECRET="flow-agent-secret",
    )
    out = io.StringIO()
    configure_logging("test", fmt="json", stream=out, settings=settings)
    values = [
        "redis-password-value",
        "env-key-value",
        "file-key-number-one",
        "file-key-number-two",
        "admin-token-value",
        "key-id-secret-value",
        "flow-agent-secret",
    ]
    logging.getLogger("flowchat.test").warning("leak: %s", " ".join(values))
    configure_logging("test", fmt="json")
    line = out.getvalue()
    assert "leak:" in line
    assert not [v for v in values if v in line]


def test_access_lines_carry_no_job_or_conversation_id(stream: io.StringIO) -> None:
    with bound(job_id="job-secret-1", conversation_id="conv-secret-2", request_id="req-9"):
        logging.getLogger("flowchat.access").info(
            "request", extra={"path": "/api/chat/job-secret-1/stream", "status": 200}
        )
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/api/chat/job-secret-1?wait=5",
            "1.1",
            200,
        )
        logging.getLogger("flowchat.worker").info("a job line keeps its ids")
    ours, uvicorn, worker = _lines(stream)
    for line in (ours, uvicorn):
        text = json.dumps(line)
        assert "job-secret-1" not in text and "conv-secret-2" not in text, line
        assert line["request_id"] == "req-9"  # the request is still joined by its own id
    assert ours["path"] == "/api/chat/{job_id}/stream"
    assert "/api/chat/{job_id}?wait=5" in uvicorn["message"]
    assert worker["job_id"] == "job-secret-1"  # other lines keep joining the chat
