from __future__ import annotations

from pathlib import Path

import pytest

from app.contracts import CHROMA_SERVER_ENV
from app.local.stack import LocalStack, Ports


@pytest.fixture(autouse=True)
def _no_flow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOW_TENANT", "FLOW_AGENT", "FLOW_AGENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_secrets_stay_out_of_the_repr(tmp_path: Path) -> None:
    stack = LocalStack(
        root=tmp_path,
        ports=Ports.free(),
        admin_token="admin-s3cret",
        env_overrides={"FLOW_AGENT_SECRET": "flow-s3cret"},
    )
    assert "admin-s3cret" not in repr(stack)
    assert "flow-s3cret" not in repr(stack)


def test_the_emulator_stands_in_unless_all_three_flow_credentials_are_set(tmp_path: Path) -> None:
    only_secret = LocalStack(root=tmp_path, env_overrides={"FLOW_AGENT_SECRET": "s"})
    assert only_secret.flow_configured is False
    env = only_secret.env()
    assert env["FLOW_BASE_URL"] == only_secret.flow_url  # the emulator, with its own credentials
    assert env["FLOW_AGENT_SECRET"] == "s"  # an explicit override still wins

    real = LocalStack(
        root=tmp_path,
        env_overrides={"FLOW_TENANT": "t", "FLOW_AGENT": "a", "FLOW_AGENT_SECRET": "s"},
    )
    assert real.flow_configured is True
    assert real.env().get("FLOW_BASE_URL") != real.flow_url


def test_the_emulator_is_not_held_to_the_production_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.chat.budget import estimate
    from app.core.settings import Settings
    from app.local.stack import EMULATOR_KEY_LIMITS, EMULATOR_TOKENS_PER_DAY

    for name in (*EMULATOR_KEY_LIMITS, "KEY_ID_SECRET"):
        monkeypatch.delenv(name, raising=False)
    emulated = LocalStack(root=tmp_path)
    env = emulated.env()
    assert emulated.local_budget
    assert int(env["FLOW_TOKENS_PER_DAY"]) == EMULATOR_TOKENS_PER_DAY
    assert EMULATOR_TOKENS_PER_DAY > 1000 * Settings().FLOW_TOKENS_PER_DAY
    # nor to the bytes its results may hold: production's bound refuses a key after about a
    # thousand chats in a result lifetime; the children's settings allow a million and more
    children = Settings(**{name: env[name] for name in EMULATOR_KEY_LIMITS})
    one_chat = estimate(children, "How do I restart the worker?", None, None)
    assert children.MAX_STORED_BYTES_PER_KEY // one_chat.stored_bytes >= 1_000_000
    assert children.FLOW_TOKENS_PER_DAY // one_chat.tokens >= 1_000_000
    assert Settings().MAX_STORED_BYTES_PER_KEY // one_chat.stored_bytes < 10_000
    # the key-id secret is generated once, owner-only, and kept across restarts
    assert env["KEY_ID_SECRET"] == LocalStack(root=tmp_path).env()["KEY_ID_SECRET"]
    assert (tmp_path / "key-id-secret").stat().st_mode & 0o077 == 0
    chosen = LocalStack(root=tmp_path, env_overrides={"FLOW_TOKENS_PER_DAY": "5000"})
    assert not chosen.local_budget and chosen.env()["FLOW_TOKENS_PER_DAY"] == "5000"
    assert "MAX_STORED_BYTES_PER_KEY" not in chosen.env()  # a production-like budget: both
    monkeypatch.setenv("MAX_STORED_BYTES_PER_KEY", "100000")  # one bound chosen, the other lifted
    bytes_chosen = LocalStack(root=tmp_path).env()
    assert bytes_chosen["MAX_STORED_BYTES_PER_KEY"] == "100000"
    assert int(bytes_chosen["FLOW_TOKENS_PER_DAY"]) == EMULATOR_TOKENS_PER_DAY
    monkeypatch.delenv("MAX_STORED_BYTES_PER_KEY")
    real = LocalStack(
        root=tmp_path,
        env_overrides={"FLOW_TENANT": "t", "FLOW_AGENT": "a", "FLOW_AGENT_SECRET": "s"},
    )
    assert not real.local_budget and not set(EMULATOR_KEY_LIMITS) & set(real.env())


def test_a_killed_redis_is_restarted_and_every_accepted_chat_is_answered(live_service) -> None:
    """`kill -9` of redis-server under `make run`: the API answers 503 with a reason meanwhile,
    the supervisor restarts Redis (AOF on, so acknowledged jobs survive) and every chat that got
    its 202 before the kill is answered after it."""
    import os
    import signal
    import time

    import httpx

    stack = live_service.stack
    live_service.emulator.configure(latency_ms=400)  # keep some chats queued at the kill
    try:
        with httpx.Client(base_url=live_service.base_url, timeout=60) as api:
            ids = []
            for i in range(6):
                accepted = api.post("/api/chat", json={"message": f"How do I restart {i}?"})
                assert accepted.status_code == 202
                ids.append(accepted.json()["id"])
            redis_proc = stack.procs["redis"]
            os.kill(redis_proc.pid, signal.SIGKILL)
            redis_proc.wait(10)
            down = api.post("/api/chat", json={"message": "while Redis is down"})
            assert down.status_code == 503
            assert "Redis" in down.json()["detail"]
            assert api.get("/api/health/ping").status_code == 200

            deadline = time.monotonic() + 60  # polling limits, not timing assertions
            while stack.procs["redis"].poll() is not None and time.monotonic() < deadline:
                stack.supervise()
                time.sleep(0.2)
            assert stack.procs["redis"].poll() is None
            live_service.emulator.configure(latency_ms=0)
            answers = {}
            deadline = time.monotonic() + 300  # restarted workers load their model first
            views = {}
            while len(answers) < len(ids) and time.monotonic() < deadline:
                stack.supervise()  # workers that lost Redis come back too
                for job_id in ids:
                    if job_id in answers:
                        continue
                    view = api.get(f"/api/chat/{job_id}", params={"wait": 2})
                    views[job_id] = (view.status_code, view.text[:200])
                    if view.status_code == 200 and view.json()["status"] == "finished":
                        answers[job_id] = view.json()
            # nothing acknowledged was lost (the last view of a chat not seen answered)
            assert set(answers) == set(ids), {i: views.get(i) for i in ids if i not in answers}
    finally:
        live_service.emulator.configure(latency_ms=0)
        deadline = time.monotonic() + 60
        while any(p.poll() is not None for p in stack.procs.values()):
            stack.supervise()
            time.sleep(0.5)
            if time.monotonic() > deadline:
                break


def test_a_port_left_in_time_wait_by_a_stopped_server_counts_as_free() -> None:
    """`make run` stopped and started at once: the previous API's connections linger in
    TIME_WAIT on its port for up to a minute; uvicorn binds with SO_REUSEADDR, so may the check."""
    import socket

    from app.local.stack import port_is_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first, as a stopping server does: TIME_WAIT is its side
    client.recv(1)
    client.close()
    server.close()
    # the old check: a bind without SO_REUSEADDR fails now
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_is_free(port)


def test_a_port_with_a_listening_server_is_not_free() -> None:
    import socket

    from app.local.stack import port_is_free

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])


def test_the_stack_file_names_where_the_secrets_are_and_holds_none(tmp_path: Path) -> None:
    """Issue 21 item 2: `make run`'s Redis port and password are written down (0600 files),
    never printed or put in the connection file itself."""
    import json
    import stat

    stack = LocalStack(root=tmp_path, ports=Ports.free(), env_overrides={"API_KEYS": "k1, k2"})
    path = stack.write_stack_file()
    details = json.loads(path.read_text())
    assert details["redis_url"] == f"redis://127.0.0.1:{stack.ports.redis}/0"
    assert details["api_url"] == stack.base_url
    assert stack.redis_password not in path.read_text()
    files = {
        "redis_password_file": stack.redis_password,
        "admin_token_file": stack.admin_token,
        "api_key_file": "k1\nk2",
    }
    for key, value in files.items():
        secret = Path(details[key])
        assert secret.read_text().strip() == value
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_chroma_refuses_a_client_without_the_token(tmp_path: Path) -> None:
    """`make run`'s Chroma requires CHROMA_TOKEN: a child without secrets reaches no data."""
    import chromadb
    import httpx

    from app.core.settings import load_settings
    from app.rag.vectorstore import make_client

    stack = LocalStack(root=tmp_path, ports=Ports.free())
    try:
        stack.start_chroma()
        assert stack.env()["CHROMA_TOKEN"] == stack.chroma_token
        # and it runs with the server environment the stacks give it (app.contracts)
        raw_env = Path(f"/proc/{stack.procs['chroma'].pid}/environ").read_bytes().split(b"\0")
        environ = dict(e.decode().split("=", 1) for e in raw_env if b"=" in e)
        assert CHROMA_SERVER_ENV.items() <= environ.items()
        with_token = make_client(
            load_settings(CHROMA_URL=stack.chroma_url, CHROMA_TOKEN=stack.chroma_token)
        )
        with_token.create_collection("guarded")
        assert [c.name for c in with_token.list_collections()] == ["guarded"]
        for token in ("", "a-guess"):  # refused when the client checks its tenant
            with pytest.raises(chromadb.errors.ChromaError, match=r"Forbidden|Unauthorized"):
                settings = load_settings(CHROMA_URL=stack.chroma_url, CHROMA_TOKEN=token)
                make_client(settings).list_collections()
        raw = httpx.get(f"{stack.chroma_url}/api/v2/tenants/default_tenant/databases", timeout=5)
        assert raw.status_code in (401, 403)
    finally:
        stack.stop()


def test_the_shared_service_starts_each_test_with_fresh_per_key_counters(live_service) -> None:
    """The settled service forgets what earlier tests spent: a test that chats until a condition
    holds (more chats on a busy machine) must not leave the next one a key near its limits."""
    import httpx
    import redis

    from app.access.quotas import KEY_PREFIX

    with httpx.Client(base_url=live_service.base_url, timeout=60) as api:
        accepted = api.post("/api/chat", json={"message": "How do I restart the worker?"})
        assert accepted.status_code == 202, accepted.text
    client = redis.Redis.from_url(live_service.redis_url)
    try:
        assert list(client.scan_iter(match=f"{KEY_PREFIX}:*"))  # the chat's reservation
        live_service.settle()
        assert not list(client.scan_iter(match=f"{KEY_PREFIX}:*"))
    finally:
        client.close()
