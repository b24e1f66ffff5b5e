"""Reach a stack the way on-call does: ``--stack staging|prod|local`` -> Redis, API URL, secrets.

- ``local``: the connection file ``make run`` writes (``var/local-stack.json``, or the file named
  by ``FLOWCHAT_LOCAL_STACK``): Redis URL, the files holding the Redis password, the admin token
  and the API keys, and the API URL.
- ``staging`` / ``prod``: ``kubectl port-forward`` to the Redis Service of the stack's namespace
  (a free local port, stopped on exit), the Redis password and the admin token read from the
  stack's Kubernetes Secret (``app.contracts.EXTERNAL_SECRET``, through the official client as
  ``ops.kube`` loads it), and ``https://<hostname>`` where the service stack takes it: its
  ``flowchat:platform`` (``Pulumi.<stack>.yaml``) either gives ``external`` values or names the
  platform stack, whose ``platform_stack/Pulumi.<stack>.yaml`` settings derive the hostname.

Nobody assembles a Redis URL or copies a password: ``resolve`` yields a ``StackTarget`` whose
``redis()`` is an authenticated connection. ``--redis-url`` (plus ``REDIS_PASSWORD``) stays an
override for a Redis reached some other way.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from app.contracts import (
    ADMIN_TOKEN_SECRET,
    EXTERNAL_SECRET,
    REDIS_PASSWORD_SECRET,
    namespace_for,
)
from app.local.stack_file import DEFAULT_STACK_FILE, STACK_FILE_ENV, StackFile
from ops.summary import OpsError

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS = ("staging", "prod", "local")
CLOUD_STACKS = ("staging", "prod")
REDIS_SERVICE = (
    "flowchat-redis"  # stacks.stores.REDIS_NAME (checked by tests/ops/test_ops_stack.py)
)
REDIS_PORT = 6379  # stacks.stores.REDIS_PORT (same test)
PORT_FORWARD_SECONDS = 30.0
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


class StackTarget(BaseModel):
    """Where a stack's Redis and API are, and the secrets to use them."""

    name: str
    redis_url: str  # without the password
    redis_password: SecretStr | None = None
    api_url: str | None = None
    admin_token: SecretStr | None = None
    api_key: SecretStr | None = None

    def redis(self, timeout: float = 5.0) -> redis.Redis:
        from ops.queue import connect  # one place opens and checks Redis connections

        password = self.redis_password.get_secret_value() if self.redis_password else None
        return connect(self.redis_url, password=password, timeout=timeout)


def local_stack_file() -> Path:
    return Path(os.environ.get(STACK_FILE_ENV) or DEFAULT_STACK_FILE)


def _read_secret_file(path: Path, what: str) -> SecretStr:
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise OpsError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def load_local() -> StackTarget:
    """The local stack from the connection file ``make run`` wrote."""
    path = local_stack_file()
    try:
        details = StackFile.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OpsError(
            f"no local stack: {path} does not exist; start one with `make run`"
        ) from None
    except (OSError, ValidationError) as exc:
        raise OpsError(f"the local stack file {path} is unreadable: {exc}") from None
    api_key = None
    if details.api_key_file is not None:
        keys = _read_secret_file(details.api_key_file, "API keys").get_secret_value()
        first = next((k.strip() for k in keys.splitlines() if k.strip() and k[0] != "#"), "")
        api_key = SecretStr(first) if first else None
    return StackTarget(
        name="local",
        redis_url=details.redis_url,
        redis_password=_read_secret_file(details.redis_password_file, "Redis password"),
        api_url=details.api_url,
        admin_token=_read_secret_file(details.admin_token_file, "admin token"),
        api_key=api_key,
    )


def hostname_of_stack(
    stack: str, pulumi_dir: Path = REPO_ROOT, platform_dir: Path | None = None
) -> str:
    """The service's DNS name, from the same source the service stack reads it: the ``external``
    values of ``flowchat:platform``, or the outputs the named platform stack derives from its
    ``platform_stack/Pulumi.<stack>.yaml`` (``platform_stack.outputs.platform_outputs``)."""
    # Pulumi-program modules: imported here so `ops.stack` keeps working without the infra extra
    from platform_stack.outputs import platform_outputs
    from platform_stack.settings import PROJECT_DIR, parse_settings, stack_file_config
    from stacks.platform_ref import PLATFORM_PROJECT, PlatformConfig

    path = pulumi_dir / f"Pulumi.{stack}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise OpsError(f"{path} does not exist; pass --base-url") from None
    raw = (data.get("config") or {}).get("flowchat:platform")
    if raw is None:
        raise OpsError(f"{path} sets no flowchat:platform; pass --base-url")
    try:
        platform = PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise OpsError(f"{path}: flowchat:platform is invalid: {_first_error(exc)}") from None
    if platform.external is not None:
        return platform.external.hostname
    *_, project, platform_stack = str(platform.stack).split("/")
    if project != PLATFORM_PROJECT:
        raise OpsError(f"{path}: flowchat:platform names project {project}, not {PLATFORM_PROJECT}")
    platform_dir = PROJECT_DIR if platform_dir is None else platform_dir
    try:
        settings = parse_settings(platform_stack, stack_file_config(platform_stack, platform_dir))
    except OSError:
        raise OpsError(
            f"{platform_dir / f'Pulumi.{platform_stack}.yaml'} does not exist; pass --base-url"
        ) from None
    except ValidationError as exc:
        raise OpsError(
            f"platform stack {platform_stack} is misconfigured: {_first_error(exc)}"
        ) from None
    return str(platform_outputs(settings, cluster_name="", oidc_issuer_url="")["hostname"])


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def api_url_of_stack(
    stack: str, pulumi_dir: Path = REPO_ROOT, platform_dir: Path | None = None
) -> str:
    """``https://`` + the stack's hostname (``hostname_of_stack``)."""
    return f"https://{hostname_of_stack(stack, pulumi_dir, platform_dir)}"


def read_stack_secret(core: Any, namespace: str) -> dict[str, SecretStr]:
    """The Redis password and admin token from the stack's Kubernetes Secret (``core``: the
    official client's CoreV1Api)."""
    from ops import kube  # the Kubernetes client (ops extra) only where a cluster is used

    with kube._calling(f"reading Secret {namespace}/{EXTERNAL_SECRET}"):
        secret = core.read_namespaced_secret(EXTERNAL_SECRET, namespace)
    data = getattr(secret, "data", None) or {}
    values: dict[str, SecretStr] = {}
    for key in (REDIS_PASSWORD_SECRET, ADMIN_TOKEN_SECRET):
        if key in data:
            values[key] = SecretStr(base64.b64decode(data[key]).decode())
    if REDIS_PASSWORD_SECRET not in values:
        raise OpsError(
            f"the Secret {namespace}/{EXTERNAL_SECRET} has no {REDIS_PASSWORD_SECRET}; "
            "check its ExternalSecret sync (kubectl get externalsecret)"
        )
    return values


@contextlib.contextmanager
def port_forward(
    namespace: str,
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    service: str = REDIS_SERVICE,
    port: int = REDIS_PORT,
    timeout: float = PORT_FORWARD_SECONDS,
) -> Iterator[int]:
    """``kubectl port-forward svc/SERVICE :PORT`` on a free local port; yields that port."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise OpsError("kubectl is not installed; it is needed to forward the stack's Redis")
    argv = [kubectl, "-n", namespace, "port-forward", f"svc/{service}", f":{port}"]
    argv += ["--address", "127.0.0.1"]
    if context:
        argv += ["--context", context]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = _FORWARDING.search(line)
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()  # kubectl exited

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout) or not found:
            proc.kill()
            err = (proc.communicate(timeout=5)[1] or "").strip().splitlines()
            raise OpsError(
                f"kubectl port-forward to svc/{service} in {namespace} did not start: "
                f"{err[-1] if err else 'no output'}"
            )
        yield found[0]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def resolve(
    stack: str,
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    need_redis: bool = True,
    need_secrets: bool = True,
) -> Iterator[StackTarget]:
    """The stack's target, with a port-forward to its Redis held open for cloud stacks.
    ``need_secrets=False`` (the smoke test) reads nothing from the cluster."""
    if stack == "local":
        yield load_local()
        return
    if stack not in CLOUD_STACKS:
        raise OpsError(f"unknown stack {stack!r}; expected one of {', '.join(STACKS)}")
    namespace = namespace_for(stack)
    api_url = api_url_of_stack(stack)
    values: dict[str, SecretStr] = {}
    if need_secrets or need_redis:
        from kubernetes import client

        from ops import kube

        api = kube.load_api_client(context, kubeconfig)
        try:
            values = read_stack_secret(client.CoreV1Api(api), namespace)
        finally:
            api.close()
    target = StackTarget(
        name=stack,
        redis_url="",
        redis_password=values.get(REDIS_PASSWORD_SECRET),
        api_url=api_url,
        admin_token=values.get(ADMIN_TOKEN_SECRET),
        api_key=SecretStr(os.environ["FLOWCHAT_API_KEY"])
        if os.environ.get("FLOWCHAT_API_KEY")
        else None,
    )
    if not need_redis:
        yield target
        return
    with port_forward(namespace, context=context, kubeconfig=kubeconfig) as local_port:
        yield target.model_copy(update={"redis_url": f"redis://127.0.0.1:{local_port}/0"})


def add_stack_arguments(parser: object, *, required: bool = False) -> None:
    """``--stack``, ``--context`` and ``--kubeconfig`` for an ops command's parser."""
    add = parser.add_argument  # type: ignore[attr-defined]
    add(
        "--stack",
        choices=STACKS,
        required=required,
        help="the stack to reach: staging|prod (kubectl port-forward to its Redis, secrets from "
        "its Kubernetes Secret) or local (the file `make run` writes, var/local-stack.json or "
        f"${STACK_FILE_ENV})",
    )
    add("--context", help="kubeconfig context for a cloud stack (default: current)")
    add("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
