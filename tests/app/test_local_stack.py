from __future__ import annotations

from pathlib import Path

import pytest

from app.local_stack import LocalStack, Ports


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


def test_a_port_left_in_time_wait_by_a_stopped_server_counts_as_free() -> None:
    """`make run` stopped and started at once: the previous API's connections linger in
    TIME_WAIT on its port for up to a minute; uvicorn binds with SO_REUSEADDR, so may the check."""
    import socket

    from app.local_stack import port_is_free

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

    from app.local_stack import port_is_free

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])
