"""Start the whole service on localhost: Redis, Chroma, the Flow emulator, workers and the API.

Used by ``make run`` (through :mod:`app.local.run`) and by the test fixtures, so the tests start
the service exactly the way an engineer does. Every process is a real one: Debian's
``redis-server``, chromadb's server requiring ``CHROMA_TOKEN`` (API and workers are separate
processes and must not share an embedded Chroma path), ``python -m app.flow.emulator``,
``python -m app.worker`` (chats), ``python -m app.ingest.worker`` (uploads and rebuilds) and
uvicorn.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.contracts import (
    CHROMA_AUTHN_CREDENTIALS_ENV,
    CHROMA_AUTHN_PROVIDER,
    CHROMA_AUTHN_PROVIDER_ENV,
    CHROMA_SERVER_APP,
    CHROMA_SERVER_ENV,
    INGEST_QUEUE_NAME,
    PING_PATH,
    QUEUE_NAME,
    REDIS_APPENDFSYNC,
)
from app.core.settings import REPO_ROOT
from app.local.stack_file import STACK_FILE_NAME, StackFile, write_private

REDIS_MAXMEMORY = "256mb"
# a crashed child is restarted after 1, 2, 4 ... 30 s, like a compose restart policy; the delay
# resets once the child has stayed up for RESTART_RESET_SECONDS
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RESTART_RESET_SECONDS = 60.0


class StartupError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when a server could listen on ``port``. Binds the way uvicorn does (SO_REUSEADDR),
    so the TIME_WAIT connections a stopped server leaves for up to a minute do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StartupError(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise StartupError(f"{what} did not become ready within {timeout:.0f} s")


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


@dataclass
class Ports:
    api: int = 8000
    redis: int = 6379
    chroma: int = 8001
    flow: int = 8010

    @classmethod
    def free(cls) -> Ports:
        return cls(api=free_port(), redis=free_port(), chroma=free_port(), flow=free_port())


EMULATOR_TOKENS_PER_DAY = 10**12  # the emulator's daily budget per key: no production limit
# with the emulator's budget, the bytes a key's chats may hold in Redis are not bounded either
# (the production bound refuses one key after about a thousand chats a day)
EMULATOR_STORED_BYTES_PER_KEY = 1 << 40
EMULATOR_KEY_LIMITS = {
    "FLOW_TOKENS_PER_DAY": str(EMULATOR_TOKENS_PER_DAY),
    "MAX_STORED_BYTES_PER_KEY": str(EMULATOR_STORED_BYTES_PER_KEY),
}


@dataclass
class LocalStack:
    """The service's processes under ``root`` (data and logs), on the given loopback ports."""

    root: Path
    ports: Ports = field(default_factory=Ports)
    workers: int = 2
    # RQ work loops per worker process (chats in flight each); `make run` passes WORKER_THREADS
    threads: int = 1
    ingest_workers: int = 1
    env_overrides: dict[str, str] = field(default_factory=dict, repr=False)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    # redis-server gets a password generated per start: only the service's processes know it
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    redis_maxmemory: str = REDIS_MAXMEMORY
    redis_appendfsync: str = REDIS_APPENDFSYNC
    # Chroma requires it; the service's processes send it (CHROMA_TOKEN)
    chroma_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    quiet: bool = True
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # name -> (restarts in a row, monotonic time of the next attempt, time it last started)
    _restarts: dict[str, tuple[int, float, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        # the same rule as the service: real Flow only when all three credentials are set
        from app.core.settings import load_settings

        self.flow_configured = load_settings(**self._flow_overrides()).flow_configured
        self._emulator_secret = secrets.token_urlsafe(24)
        self.key_id_secret = self._key_id_secret()

    def _key_id_secret(self) -> str:
        """KEY_ID_SECRET: from the environment, else generated once and kept (owner-readable
        only) under ``root``, so key ids (quotas, conversations) survive a restart."""
        given = self.env_overrides.get("KEY_ID_SECRET") or os.environ.get("KEY_ID_SECRET")
        if given:
            return given
        path = self.root / "key-id-secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    @property
    def local_budget(self) -> bool:
        """With the emulator (which costs nothing) chats are not held to the production daily
        Flow-token budget, unless FLOW_TOKENS_PER_DAY is set explicitly."""
        given = {**os.environ, **self.env_overrides}.get("FLOW_TOKENS_PER_DAY")
        return not self.flow_configured and not given

    def lifted_limits(self) -> dict[str, str]:
        """The per-key limits of ``EMULATOR_KEY_LIMITS`` the children get: all of them with the
        local budget, except one set explicitly (the environment or ``env_overrides``)."""
        if not self.local_budget:
            return {}
        given = {**os.environ, **self.env_overrides}
        return {name: value for name, value in EMULATOR_KEY_LIMITS.items() if not given.get(name)}

    def _flow_overrides(self) -> dict[str, str]:
        names = ("FLOW_TENANT", "FLOW_AGENT", "FLOW_AGENT_SECRET")
        return {k: v for k, v in self.env_overrides.items() if k in names}

    # --- environment of the children -------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def redis_url(self) -> str:
        """An authenticated URL for in-process clients (tests, tools). The children get the
        plain URL and ``REDIS_PASSWORD``, as in a pod."""
        return f"redis://:{self.redis_password}@127.0.0.1:{self.ports.redis}/0"

    @property
    def plain_redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def anonymous_chat(self) -> bool:
        """`make run` without keys stays open on loopback (the API would refuse to start)."""
        keys = {**os.environ, **self.env_overrides}
        return not (keys.get("API_KEYS") or keys.get("API_KEYS_FILE"))

    @property
    def chroma_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.chroma}"

    @property
    def flow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.flow}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "REDIS_URL": self.plain_redis_url,
                "REDIS_PASSWORD": self.redis_password,
                "CHROMA_URL": self.chroma_url,
                "CHROMA_TOKEN": self.chroma_token,
                "VECTOR_STORE_PATH": str(self.root / "chroma"),
                "DOCUMENTS_PATH": str(self.root / "documents"),
                "ADMIN_TOKEN": self.admin_token,
                "KEY_ID_SECRET": self.key_id_secret,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.lifted_limits())
        if self.anonymous_chat:
            env["ALLOW_ANONYMOUS_CHAT"] = "true"
        if not self.flow_configured:  # the emulator stands in for Flow, with local credentials
            env.update(
                {
                    "FLOW_BASE_URL": self.flow_url,
                    "FLOW_TENANT": "local",
                    "FLOW_AGENT": "flowchat-local",
                    "FLOW_AGENT_SECRET": self._emulator_secret,
                }
            )
        env.update(self.env_overrides)
        return env

    # --- processes -------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        with (self.root / "logs" / f"{name}.log").open("ab") as log:  # the child keeps its copy
            proc = subprocess.Popen(
                argv,
                env=env or self.env(),
                stdout=log if self.quiet else None,
                stderr=subprocess.STDOUT if self.quiet else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        self.procs[name] = proc
        return proc

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartupError(
                "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu)"
            )
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        # the password goes in an owner-only config file, not on the command line (ps shows it)
        config = data / "auth.conf"
        config.unlink(missing_ok=True)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"requirepass {self.redis_password}\n")
        proc = self._spawn(
            "redis",
            [
                binary,
                str(config),
                "--port",
                str(self.ports.redis),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                # every write reaches the AOF (fsynced) before Redis answers it, so a 202 survives
                # a kill -9 (app.contracts.REDIS_APPENDFSYNC; the bench compares `everysec`)
                "--appendonly",
                "yes",
                "--appendfsync",
                self.redis_appendfsync,
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--maxmemory",
                self.redis_maxmemory,
                # never evict: queued jobs must not vanish; a full Redis refuses writes (503)
                "--maxmemory-policy",
                "noeviction",
            ],
        )
        import redis

        client = redis.Redis(
            port=self.ports.redis, password=self.redis_password, socket_connect_timeout=0.5
        )
        wait_until(lambda: bool(client.ping()), "redis-server", 20, proc)
        client.close()

    def start_chroma(self) -> None:
        """chromadb's own server, requiring the token: its Python server (the Rust one of
        `chroma run` has no token authentication in chromadb 1.x) over the same storage."""
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TMPDIR")},
            "IS_PERSISTENT": "TRUE",
            "PERSIST_DIRECTORY": str(self.root / "chroma"),
            **CHROMA_SERVER_ENV,
            CHROMA_AUTHN_PROVIDER_ENV: CHROMA_AUTHN_PROVIDER,
            CHROMA_AUTHN_CREDENTIALS_ENV: self.chroma_token,
        }
        proc = self._spawn(
            "chroma",
            [
                sys.executable,
                "-m",
                "uvicorn",
                CHROMA_SERVER_APP,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.chroma),
                "--no-access-log",
            ],
            env,
        )
        wait_until(lambda: http_ok(f"{self.chroma_url}/api/v2/heartbeat"), "chroma", 60, proc)

    def start_emulator(self) -> None:
        if self.flow_configured:
            return
        proc = self._spawn(
            "flow-emulator",
            [
                sys.executable,
                "-m",
                "app.flow.emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.flow),
            ],
        )
        wait_until(lambda: http_ok(f"{self.flow_url}/_emulator/stats"), "Flow emulator", 30, proc)

    def _start_pool(
        self, name: str, module: str, count: int, queue_name: str, threads: int | None = None
    ) -> None:
        """``count`` processes of ``module``; with ``threads``, that many RQ loops each."""
        argv = [sys.executable, "-m", module, "--workers", str(count)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        self._spawn(name, argv)
        import redis
        from rq import Queue, Worker

        client = redis.Redis.from_url(self.redis_url)
        queue = Queue(queue_name, connection=client)
        proc = self.procs[name]
        loops = count * (threads or 1)
        wait_until(lambda: len(Worker.all(queue=queue)) >= loops, name, 90, proc)
        client.close()

    def start_workers(self) -> None:
        """The chat pool (``flow_tasks`` only): ``workers`` processes x ``threads`` loops."""
        self._start_pool("worker", "app.worker", self.workers, QUEUE_NAME, self.threads)

    def stop_workers(self) -> None:
        self._stop("worker")

    def start_ingest_workers(self) -> None:
        """The ingestion pool (``flow_ingest`` only): uploads and rebuilds never wait behind
        chats, and chats never wait behind them."""
        if self.ingest_workers > 0:
            self._start_pool(
                "ingest-worker", "app.ingest.worker", self.ingest_workers, INGEST_QUEUE_NAME
            )

    def stop_ingest_workers(self) -> None:
        self._stop("ingest-worker")

    def start_api(self) -> None:
        proc = self._spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.api),
                "--no-access-log",
            ],
        )
        wait_until(lambda: http_ok(f"{self.base_url}{PING_PATH}"), "API", 60, proc)

    def start(self) -> None:
        try:
            self.start_redis()
            self.start_chroma()
            self.start_emulator()
            self.start_workers()
            self.start_ingest_workers()
            self.start_api()
        except BaseException:
            self.stop()
            raise

    def _stop(self, name: str, timeout: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def _starter(self, name: str) -> Callable[[], None]:
        return {
            "redis": self.start_redis,
            "chroma": self.start_chroma,
            "flow-emulator": self.start_emulator,
            "worker": self.start_workers,
            "ingest-worker": self.start_ingest_workers,
            "api": self.start_api,
        }[name]

    def supervise(self, say: Callable[[str], None] = lambda _: None) -> list[str]:
        """Restart every child that exited, with backoff (call it every second or so).
        Returns the names restarted now; a failed restart is tried again after a longer wait."""
        restarted = []
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            count, next_at, started = self._restarts.get(name, (0, 0.0, now))
            if proc.poll() is None:
                if count and now - started > RESTART_RESET_SECONDS:
                    self._restarts[name] = (0, 0.0, started)  # it stayed up: reset the backoff
                continue
            if now < next_at:
                continue
            delay = RESTART_BACKOFF_SECONDS[min(count, len(RESTART_BACKOFF_SECONDS) - 1)]
            say(f"{name} exited (code {proc.returncode}); restarting it (attempt {count + 1})")
            self._restarts[name] = (count + 1, now + delay, now)
            try:
                self._starter(name)()
            except StartupError as exc:
                say(f"{name} did not come back: {exc}; next attempt in {delay:g} s")
                continue
            self._restarts[name] = (count + 1, now + delay, time.monotonic())
            restarted.append(name)
        return restarted

    def write_stack_file(self, path: Path | None = None) -> Path:
        """Write the connection details (``StackFile``, mode 0600) and the secret files they
        name, under ``root``; return the file's path (default ``root/local-stack.json``)."""
        secrets_dir = self.root / "secrets"
        password = write_private(secrets_dir / "redis-password", self.redis_password + "\n")
        token = write_private(secrets_dir / "admin-token", self.admin_token + "\n")
        env = {**os.environ, **self.env_overrides}
        keys_file = env.get("API_KEYS_FILE") or None
        if keys_file is None and env.get("API_KEYS"):
            keys = [k.strip() for k in env["API_KEYS"].split(",") if k.strip()]
            keys_file = str(write_private(secrets_dir / "api-keys", "\n".join(keys) + "\n"))
        details = StackFile(
            redis_url=self.plain_redis_url,
            redis_password_file=password,
            admin_token_file=token,
            api_url=self.base_url,
            api_key_file=Path(keys_file) if keys_file else None,
        )
        return write_private(path or self.root / STACK_FILE_NAME, details.model_dump_json(indent=2))

    def stop(self) -> None:
        for name in ("api", "worker", "ingest-worker", "flow-emulator", "chroma", "redis"):
            self._stop(name)
