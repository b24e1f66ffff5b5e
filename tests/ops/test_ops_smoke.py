"""ops.smoke against the real local service (``live_service``), a dead URL and a stand-in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.contracts import CHAT_PATH, PING_PATH, READY_PATH, STATUS_PATH
from app.local.stack import free_port
from ops import smoke
from stacks.routing import INGRESS_PATHS


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = smoke.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- without the service ------------------------------------------------------------------------


def test_dead_url_fails_with_connection_sentence(
    prompts_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    summary = tmp_path / "summary.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        code, out, err = run(["--base-url", url, "--prompts", str(prompts_file)], capsys)
    assert code == 1
    assert f"cannot connect to {url}" in err
    assert "FAIL  health ping" in out
    assert "SKIP  readiness" in out
    table = summary.read_text()
    assert "Smoke test FAILED" in table
    assert "| FAIL | health ping |" in table


def test_missing_prompts_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = run(["--base-url", "http://127.0.0.1:1", "--prompts", str(missing)], capsys)
    assert code == 1
    assert f"the regression prompts file {missing} does not exist" in err


def test_malformed_prompts_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- prompt: hi\n")
    with pytest.raises(smoke.OpsError, match=r"malformed at 0\.expect_source"):
        smoke.load_prompts(bad)


def test_stand_in_failing_chat_reports_the_job_error(fake_service: Any, prompts_file: Path) -> None:
    fake_service.healthy = lambda: False
    report = smoke.run_smoke(
        fake_service.url, prompts=smoke.load_prompts(prompts_file), progress=lambda _: None
    )
    assert not report.ok
    assert report.failure == (
        "chat round trip: the chat job failed: Flow refused the credentials (HTTP 401)"
    )
    # ping, readiness (a loopback URL), status, keyless chat refused (the stand-in is closed),
    # chat, one prompt
    assert [c.status for c in report.checks] == ["PASS", "PASS", "PASS", "PASS", "FAIL", "SKIP"]


# --- through the Ingress ------------------------------------------------------------------------


def ingress_routes(path: str) -> bool:
    """Whether the Ingress of ``stacks.routing.INGRESS_PATHS`` routes ``path``, matched as
    Kubernetes does: ``Exact`` is the whole path, ``Prefix`` matches whole path elements."""
    for rule, kind in INGRESS_PATHS:
        assert kind in ("Exact", "Prefix"), kind
        if kind == "Exact" and path == rule:
            return True
        elements = rule.rstrip("/").split("/")
        if kind == "Prefix" and path.split("/")[: len(elements)] == elements:
            return True
    return False


def test_the_ingress_matcher_reads_the_rules() -> None:
    assert ingress_routes(CHAT_PATH) and ingress_routes(f"{CHAT_PATH}/abc")
    assert ingress_routes(STATUS_PATH) and ingress_routes("/")
    assert not ingress_routes(f"{CHAT_PATH}x") and not ingress_routes(f"{STATUS_PATH}/x")
    assert not ingress_routes(PING_PATH) and not ingress_routes(READY_PATH)


@dataclass
class FakeIngress:
    """The public URL: answers the controller's 404 for what the Ingress does not route and
    forwards the rest to the stand-in service; remembers every path asked."""

    upstream: str
    paths: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if not ingress_routes(request.url.path):
            return httpx.Response(404, text="404 Not Found (ingress default backend)")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = httpx.request(
            request.method,
            self.upstream + request.url.raw_path.decode(),
            headers=headers,
            content=request.content,
        )
        return httpx.Response(answer.status_code, json=answer.json())


def test_public_smoke_asks_only_what_the_ingress_routes(
    fake_service: Any, prompts_file: Path
) -> None:
    ingress = FakeIngress(fake_service.url)
    report = smoke.run_smoke(
        "https://chat.example",
        api_key="k",
        prompts=smoke.load_prompts(prompts_file),
        progress=lambda _: None,
        transport=httpx.MockTransport(ingress),
    )
    assert report.ok, report.failure
    assert [c.name for c in report.checks][:3] == [
        "status",
        "keyless chat refused",
        "chat round trip",
    ]
    assert {STATUS_PATH, CHAT_PATH} <= set(ingress.paths)
    assert [p for p in ingress.paths if not ingress_routes(p)] == []


def test_health_checks_through_the_ingress_get_its_404(
    fake_service: Any, prompts_file: Path
) -> None:
    """Asked for (``--health``) against a public URL, the health checks fail as a deploy's would."""
    report = smoke.run_smoke(
        "https://chat.example",
        health=True,
        prompts=smoke.load_prompts(prompts_file),
        progress=lambda _: None,
        transport=httpx.MockTransport(FakeIngress(fake_service.url)),
    )
    assert report.failure == "health ping: health ping answered HTTP 404, expected 200"


def test_health_checks_are_on_by_default_only_on_a_loopback_url() -> None:
    assert smoke.health_reachable("http://127.0.0.1:8000")  # make run, a port-forward
    assert smoke.health_reachable("http://localhost:8000")
    assert smoke.health_reachable("http://[::1]:8000")
    assert not smoke.health_reachable("https://chat.example")
    assert not smoke.health_reachable("https://10.0.0.5")


# --- against the real service -------------------------------------------------------------------


def test_healthy_service_passes(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["--base-url", live_service.base_url, "--prompts", str(prompts_file), "--budget", "60",
         "--allow-open"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "SKIP  keyless chat refused" in out  # `make run` is open on loopback
    assert "PASS  chat round trip" in out
    assert "PASS  prompt 1" in out


def test_flow_failing_every_time_fails_with_the_job_error(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_service.emulator.configure(error_rate=1.0)
    try:
        code, out, err = run(
            ["--base-url", live_service.base_url, "--prompts", str(prompts_file),
             "--budget", "60", "--allow-open"],
            capsys,
        )  # fmt: skip
    finally:
        live_service.emulator.reset()
    assert code == 1
    assert "FAIL  chat round trip" in out
    assert "the chat job failed:" in err


def test_an_open_service_fails_the_keyless_check(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --allow-open, a chat API that accepts a request without a key fails the smoke."""
    code, out, err = run(
        ["--base-url", live_service.base_url, "--prompts", str(prompts_file), "--budget", "60"],
        capsys,
    )
    assert code == 1
    assert "FAIL  keyless chat refused" in out
    assert "the chat API is open to anyone" in err


def test_stopped_workers_fail_readiness(
    live_service: Any, prompts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_service.stop_workers()
    try:
        code, out, err = run(
            ["--base-url", live_service.base_url, "--prompts", str(prompts_file)], capsys
        )
    finally:
        live_service.start_workers()
    assert code == 1
    assert "the service is not ready: workers" in err
    assert "SKIP  chat round trip" in out


def test_default_regression_prompts_pass_against_the_runbook(
    live_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke.DEFAULT_PROMPTS.is_file()
    code, out, err = run(
        ["--base-url", live_service.base_url, "--budget", "60", "--allow-open"], capsys
    )
    assert code == 0, err
    assert out.count("PASS  prompt") == len(smoke.load_prompts(smoke.DEFAULT_PROMPTS))


def test_a_refused_chat_says_which_limit_refused_it() -> None:
    """A 429 is a full queue or one of the key's limits: the failure carries the service's
    reason (the vector-store rebuild once reported a key's stored-bytes bound as a full queue)."""
    import httpx

    from ops.smoke import CheckFailed, ask

    detail = "this API key's chats have stored 33527436 of the 33554432 bytes allowed"

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "85498"}, json={"detail": detail})

    transport = httpx.MockTransport(refuse)
    with (
        httpx.Client(base_url="http://smoke.test", transport=transport) as c,
        pytest.raises(CheckFailed) as refused,
    ):
        ask(c, "How do I restart the worker?", budget=5)
    assert detail in str(refused.value)
    assert "Retry-After 85498 s" in str(refused.value)
    assert "queue is full" not in str(refused.value)
