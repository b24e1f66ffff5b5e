"""Running the emulator: in process (:func:`run_emulator`, uvicorn in a thread; the tests) or as
``python -m app.flow.emulator`` (:func:`main`; ``--help`` lists the knobs)."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError

from app.core.closing import ClosedOnExit
from app.flow.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_TENANT,
    ConfigUpdate,
    EmulatorConfig,
    EmulatorStats,
)
from app.flow.emulator.routes import create_app
from app.flow.emulator.state import EmulatorState
from app.observability.logs import configure_logging


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from now on, even before uvicorn serves
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmulatorHandle(ClosedOnExit):
    """A running in-process emulator (uvicorn in a background thread)."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
        state: EmulatorState,
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.state = state
        self.url = _url(sock)

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def stats(self) -> EmulatorStats:
        return self.state.stats()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """In-process equivalent of ``POST /_emulator/config``."""
        return self.state.update(ConfigUpdate(**changes))

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def close(self) -> None:
        """The same as :meth:`stop` (``with run_emulator(...)`` stops it on the way out)."""
        self.stop()

    def __repr__(self) -> str:
        return f"EmulatorHandle(url={self.url!r})"


def run_emulator(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
) -> EmulatorHandle:
    """Start the emulator on ``host:port`` (0 = a free port) and return once it serves.

    Use as ``with run_emulator(cfg) as emu: ...`` or call ``.stop()`` yourself.
    """
    state = EmulatorState(config or EmulatorConfig())
    sock = _bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state=state),
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="flow-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Flow emulator did not start")
        time.sleep(0.01)
    return EmulatorHandle(server, thread, sock, state)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.flow.emulator",
        description="Local emulator of the CI&T Flow gateway (token + chat completions).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument("--client-id", help="expected clientId / FlowAgent (env FLOW_AGENT)")
    parser.add_argument("--client-secret", help="expected clientSecret (env FLOW_AGENT_SECRET)")
    parser.add_argument("--tenant", help="expected FlowTenant (env FLOW_TENANT)")
    parser.add_argument("--app-to-access", default="llm-api")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to each chat call")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500")
    parser.add_argument(
        "--rate-limit-rate", type=float, default=0.0, help="probability of a 429 (Retry-After: 1)"
    )
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds")
    parser.add_argument(
        "--token-latency-ms", type=float, default=0.0, help="between streamed tokens"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default="info")
    return parser


def _config_from_namespace(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> EmulatorConfig:
    return EmulatorConfig.from_env(
        env,
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        tenant=args.tenant,
        app_to_access=args.app_to_access,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        token_lifetime=args.token_lifetime,
        seed=args.seed,
        token_latency_ms=args.token_latency_ms,
    )


def config_from_args(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> EmulatorConfig:
    """Config from command-line flags, credentials falling back to FLOW_* environment variables."""
    return _config_from_namespace(build_parser().parse_args(argv), env)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config_from_namespace(args)
    except ValidationError as exc:
        print(f"invalid emulator configuration: {exc.error_count()} error(s)", file=sys.stderr)
        for err in exc.errors():
            print(f"  --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}", file=sys.stderr)
        return 2
    sock = _bind(config.host, config.port)
    credentials = (
        "credentials from FLOW_AGENT/FLOW_AGENT_SECRET/FLOW_TENANT or flags"
        if config.client_id != DEFAULT_CLIENT_ID
        else f"development credentials (agent {DEFAULT_CLIENT_ID!r}, tenant {DEFAULT_TENANT!r})"
    )
    print(f"Flow emulator serving on {_url(sock)} with {credentials}", flush=True)
    configure_logging("flow-emulator", level=args.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), lifespan="off", log_level=args.log_level, log_config=None
        )
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
