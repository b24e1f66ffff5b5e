"""Fixtures for the ops tests: real Redis, and loopback stand-ins for what cannot run here.

- ``ops_redis``: a real ``redis-server`` on a free loopback port.
- ``fake_kube``: a small Kubernetes API over loopback HTTP (read/patch Deployment, get/patch
  ExternalSecret) that behaves like the controllers: a patched pod template rolls out over a
  few reads; a force-sync annotation yields a newer ``refreshTime`` and ``Ready``. The official
  client reaches it through a kubeconfig file (``fake_kube.kubeconfig``).
- ``fake_service``: a tiny flowchat stand-in over loopback HTTP (ping, ready, status, chat) whose
  health is decided by a callable, e.g. "is the credential in the secret store the good one".
- ``fake_vault``: an azure-core ``HttpTransport`` serving Key Vault's REST API in memory, with
  the Bearer challenge the SDK expects.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import yaml
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class _Server:
    """A ThreadingHTTPServer on a free loopback port, run in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    @property
    def owner(self) -> Any:
        return self.server.owner  # type: ignore[attr-defined]

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")


# --- Redis --------------------------------------------------------------------------------------


@pytest.fixture
def ops_redis(tmp_path: Path) -> Iterator[str]:
    """URL of a real redis-server on a free loopback port (no persistence) that requires a
    password, as in every stack; the URL carries it (``ops_redis_plain`` splits them)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    password = uuid.uuid4().hex
    config = tmp_path / "redis-auth.conf"
    config.write_text(f"requirepass {password}\n")
    config.chmod(0o600)
    proc = subprocess.Popen(
        [binary, str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    conn = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            conn.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield url
    conn.close()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def ops_redis_plain(ops_redis: str) -> tuple[str, str]:
    """(URL without the password, the password) of ``ops_redis``: what on-call has after a
    port-forward, with the password in the stack's Secret."""
    parts = urlsplit(ops_redis)
    return f"redis://127.0.0.1:{parts.port}/0", str(parts.password)


# --- the production-shaped local stack ----------------------------------------------------------


@dataclass
class OpsStack:
    """A running local stack shaped like production (Redis password, API keys, an admin token,
    nothing seeded) and the connection file ``make run`` writes for it."""

    stack: Any  # app.local.stack.LocalStack
    stack_file: Path
    api_key: str
    other_key: str

    @property
    def env(self) -> dict[str, str]:
        """The environment a runbook command runs in: the stack file, nothing else secret."""
        import os

        from app.local.stack_file import STACK_FILE_ENV

        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env[STACK_FILE_ENV] = str(self.stack_file)
        return env


_SECRET_ENV = ("REDIS_URL", "REDIS_PASSWORD", "ADMIN_TOKEN", "FLOWCHAT_API_KEY", "API_KEYS")


@pytest.fixture(scope="session")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    """The whole service as `make run` starts it, but production-shaped: two API keys that
    distrust each other (chat refuses a keyless request), a Redis password, nothing seeded.
    ``ops_stack.stack_file`` is its connection file (``--stack local`` with
    ``FLOWCHAT_LOCAL_STACK`` pointing at it)."""
    from app.local.stack import LocalStack, Ports

    root = tmp_path_factory.mktemp("ops-stack")
    api_key, other_key = uuid.uuid4().hex, uuid.uuid4().hex
    keys = root / "api-keys"
    keys.write_text(f"{api_key}\n{other_key}\n")
    keys.chmod(0o600)
    stack = LocalStack(
        root=root,
        ports=Ports.free(),
        workers=1,
        threads=4,
        env_overrides={
            "API_KEYS_FILE": str(keys),
            "RATE_LIMIT_PER_MINUTE": "100000",
            "FLOW_TOKENS_PER_DAY": "100000000",
        },
    )
    assert not stack.anonymous_chat
    stack.start()
    try:
        path = stack.write_stack_file()
        yield OpsStack(stack=stack, stack_file=path, api_key=api_key, other_key=other_key)
    finally:
        stack.stop()


# --- Kubernetes ---------------------------------------------------------------------------------

DEPLOY_RE = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
ES_RE = "/apis/external-secrets.io/v1/namespaces/{ns}/externalsecrets/{name}"


@dataclass
class FakeKube:
    url: str = ""
    kubeconfig: Path = Path()
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    external_secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)  # method, path, ct
    reads_to_roll: int = 2  # reads of a deployment before a new rollout completes
    rollout_stuck: bool = False
    sync_fails: bool = False
    on_sync: Callable[[], None] | None = None  # called when a force-sync happens
    # (method, path) -> None (serve normally), "close" (drop the connection without an answer)
    # or "garbage" (200 with a body that is not JSON): transport failures the client must survive
    fault: Callable[[str, str], str | None] | None = None
    _pending: dict[tuple[str, str], int] = field(default_factory=dict)
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_secret(self, namespace: str, name: str, values: dict[str, str]) -> None:
        import base64

        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        self.secrets[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": data,
        }

    def add_deployment(self, namespace: str, name: str, replicas: int = 2) -> None:
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
            },
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            },
        }

    def add_external_secret(self, namespace: str, name: str) -> None:
        self.external_secrets[(namespace, name)] = {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": namespace, "annotations": {}},
            "spec": {"refreshInterval": "1h"},
            "status": {
                "refreshTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}],
            },
        }

    def calls(self, method: str, needle: str = "") -> list[tuple[str, str, str, Any]]:
        return [r for r in self.requests if r[0] == method and needle in r[1]]

    # controller behaviour ---------------------------------------------------------------------
    def read_deployment(self, key: tuple[str, str]) -> dict[str, Any]:
        dep = self.deployments[key]
        if key in self._pending and not self.rollout_stuck:
            self._pending[key] -= 1
            st, replicas = dep["status"], dep["spec"]["replicas"]
            if self._pending[key] <= 0:
                del self._pending[key]
                st.update(
                    observedGeneration=dep["metadata"]["generation"],
                    replicas=replicas,
                    updatedReplicas=replicas,
                    availableReplicas=replicas,
                    readyReplicas=replicas,
                )
            else:  # surge: one new pod up, old ones still there
                st.update(
                    observedGeneration=dep["metadata"]["generation"],
                    replicas=replicas + 1,
                    updatedReplicas=1,
                    availableReplicas=replicas,
                )
        return dep

    def patch_deployment(self, key: tuple[str, str], patch: dict[str, Any]) -> dict[str, Any]:
        dep = self.deployments[key]
        before = copy.deepcopy(dep["spec"])
        deep_merge(dep, patch)
        if dep["spec"] != before:
            dep["metadata"]["generation"] += 1
            self._pending[key] = self.reads_to_roll
        return dep

    def patch_external_secret(self, key: tuple[str, str], patch: dict[str, Any]) -> dict[str, Any]:
        es = self.external_secrets[key]
        old = copy.deepcopy(es["metadata"].get("annotations"))
        deep_merge(es, patch)
        if es["metadata"].get("annotations") != old:
            tick = next(self._clock)
            if self.on_sync is not None:
                self.on_sync()
            es["status"]["refreshTime"] = f"2026-01-01T00:{tick // 60:02d}:{tick % 60:02d}Z"
            ok = not self.sync_fails
            es["status"]["conditions"] = [
                {
                    "type": "Ready",
                    "status": "True" if ok else "False",
                    "reason": "SecretSynced" if ok else "SecretSyncedError",
                    "message": "" if ok else "could not get secret data from provider",
                }
            ]
        return es


def _kube_handler() -> type[BaseHTTPRequestHandler]:
    class Handler(_JsonHandler):
        def _route(self) -> tuple[str, tuple[str, str]] | None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            # apis/apps/v1/namespaces/NS/deployments/NAME
            if (
                len(parts) == 7
                and parts[:3] == ["apis", "apps", "v1"]
                and parts[5] == "deployments"
            ):
                return "deployment", (parts[4], parts[6])
            if (
                len(parts) == 7
                and parts[:3] == ["apis", "external-secrets.io", "v1"]
                and parts[5] == "externalsecrets"
            ):
                return "es", (parts[4], parts[6])
            # api/v1/namespaces/NS/secrets/NAME
            if len(parts) == 6 and parts[:2] == ["api", "v1"] and parts[4] == "secrets":
                return "secret", (parts[3], parts[5])
            return None

        def _faulted(self, method: str) -> bool:
            kube: FakeKube = self.owner.state
            what = kube.fault(method, self.path) if kube.fault else None
            if what == "close":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return True
            if what == "garbage":
                data = b"<html><body>502 Bad Gateway</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True
            return False

        def _not_found(self) -> None:
            self.send_json(
                404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            )

        def do_GET(self) -> None:
            kube: FakeKube = self.owner.state
            route = self._route()
            with kube.lock:
                kube.requests.append(("GET", self.path, "", None))
            if self._faulted("GET"):
                return
            with kube.lock:
                if route and route[0] == "deployment" and route[1] in kube.deployments:
                    return self.send_json(200, kube.read_deployment(route[1]))
                if route and route[0] == "es" and route[1] in kube.external_secrets:
                    return self.send_json(200, kube.external_secrets[route[1]])
                if route and route[0] == "secret" and route[1] in kube.secrets:
                    return self.send_json(200, kube.secrets[route[1]])
            self._not_found()

        def do_PATCH(self) -> None:
            kube: FakeKube = self.owner.state
            route = self._route()
            ctype = self.headers.get("Content-Type", "")
            body = self.read_json()
            with kube.lock:
                kube.requests.append(("PATCH", self.path, ctype, body))
            if self._faulted("PATCH"):
                return
            with kube.lock:
                if route and route[0] == "deployment" and route[1] in kube.deployments:
                    if ctype not in (
                        "application/strategic-merge-patch+json",
                        "application/merge-patch+json",
                    ):
                        return self.send_json(415, {"kind": "Status", "code": 415})
                    return self.send_json(200, kube.patch_deployment(route[1], body))
                if route and route[0] == "es" and route[1] in kube.external_secrets:
                    if ctype != "application/merge-patch+json":  # CRDs: no strategic merge
                        return self.send_json(415, {"kind": "Status", "code": 415})
                    return self.send_json(200, kube.patch_external_secret(route[1], body))
            self._not_found()

    return Handler


def write_kubeconfig(path: Path, server: str, user: str, token: str) -> Path:
    """A kubeconfig with one context `fake`: `user` with a bearer token on `server`."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": user}}],
                "current-context": "fake",
            }
        )
    )
    return path


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKube]:
    state = FakeKube()
    server = _Server(_kube_handler())
    server.state = state  # type: ignore[attr-defined]
    state.url = server.url
    state.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, "ops", "fake-token")
    yield state
    server.close()


@pytest.fixture
def kube_apis(fake_kube: FakeKube) -> Iterator[tuple[Any, Any]]:
    """(AppsV1Api, CustomObjectsApi) of the official client, configured from the kubeconfig."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(
        config_file=str(fake_kube.kubeconfig), context="fake", client_configuration=cfg
    )
    api = client.ApiClient(configuration=cfg)
    yield client.AppsV1Api(api), client.CustomObjectsApi(api)
    api.close()


# --- flowchat stand-in --------------------------------------------------------------------------


@dataclass
class FakeService:
    url: str = ""
    healthy: Callable[[], bool] = lambda: True
    chats: int = 0


def _service_handler() -> type[BaseHTTPRequestHandler]:
    class Handler(_JsonHandler):
        def do_GET(self) -> None:
            svc: FakeService = self.owner.state
            path = urlsplit(self.path).path
            if path == "/api/health/ping":
                return self.send_json(200, {"status": "ok"})
            if path == "/api/status":
                return self.send_json(200, {"maintenance": False, "reason": None})
            if path == "/api/health/ready":
                ok = True
                checks = {
                    "redis": {"ok": True, "detail": "ok"},
                    "workers": {"ok": True, "detail": "1 worker", "count": 1},
                    "flow": {"ok": ok, "detail": "ok"},
                }
                return self.send_json(200, {"status": "ready", "checks": checks})
            if path.startswith("/api/chat/"):
                job_id = path.rsplit("/", 1)[1]
                if svc.healthy():
                    return self.send_json(
                        200,
                        {
                            "id": job_id,
                            "status": "finished",
                            "answer": "Run python -m ops.worker restart [1].",
                            "error": None,
                            "sources": [{"n": 1, "document": "runbook.md", "score": 0.9}],
                        },
                    )
                return self.send_json(
                    200,
                    {
                        "id": job_id,
                        "status": "failed",
                        "answer": None,
                        "error": "Flow refused the credentials (HTTP 401)",
                        "sources": [],
                    },
                )
            self.send_json(404, {"detail": "not found"})

        def do_POST(self) -> None:
            svc: FakeService = self.owner.state
            body = self.read_json()
            if urlsplit(self.path).path == "/api/chat":
                # closed like the real service: ops.smoke's keyless probe (no key, no message)
                # is refused; keyless chats with a message are still answered for older tests
                if not self.headers.get("X-API-Key") and "message" not in (body or {}):
                    return self.send_json(401, {"detail": "an API key is required"})
                svc.chats += 1
                job_id = uuid.uuid4().hex
                return self.send_json(
                    202, {"id": job_id, "status": "queued", "status_url": f"/api/chat/{job_id}"}
                )
            self.send_json(404, {"detail": "not found"})

    return Handler


@pytest.fixture
def fake_service() -> Iterator[FakeService]:
    state = FakeService()
    server = _Server(_service_handler())
    server.state = state  # type: ignore[attr-defined]
    state.url = server.url
    yield state
    server.close()


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        yaml.safe_dump(
            [
                {
                    "prompt": "How do I restart the worker?",
                    "expect_source": "runbook.md",
                    "expect_any": ["restart"],
                }
            ]
        )
    )
    return path


# --- Azure Key Vault at the transport boundary --------------------------------------------------


class _RawResponse:
    """What RestHttpClientTransportResponse reads from an http.client response."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = "OK" if status < 400 else "Error"
        self._data = json.dumps(body).encode() if body is not None else b""
        self._headers = {"Content-Type": "application/json", **headers}

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers.items())

    def read(self) -> bytes:
        return self._data


@dataclass
class FakeVault:
    """Key Vault secrets REST API in memory: versions per name, latest wins."""

    vault_url: str = "https://flowchat-staging-kv.vault.azure.net"
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def seed(self, name: str, value: str) -> str:
        return self._add(name, value)["id"].rsplit("/", 1)[1]

    def _add(self, name: str, value: str) -> dict[str, Any]:
        version = uuid.uuid4().hex
        now = int(time.time())
        item = {
            "value": value,
            "id": f"{self.vault_url}/secrets/{name}/{version}",
            "attributes": {"enabled": True, "created": now, "updated": now},
        }
        self.versions.setdefault(name, []).append(item)
        return item

    def current(self, name: str) -> str:
        return self.versions[name][-1]["value"]

    def enabled(self, name: str, version: str) -> bool:
        for item in self.versions[name]:
            if item["id"].endswith("/" + version):
                return bool(item["attributes"]["enabled"])
        raise KeyError(version)

    def handle(self, method: str, url: str, headers: Any, body: bytes) -> _RawResponse:
        self.requests.append((method, url))
        if "Authorization" not in headers:
            challenge = (
                'Bearer authorization="https://login.microsoftonline.com/'
                '00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"'
            )
            return _RawResponse(401, None, {"WWW-Authenticate": challenge})
        parts = urlsplit(url)
        assert "api-version" in parse_qs(parts.query)
        segs = [s for s in parts.path.split("/") if s]  # secrets, name[, version]
        if not segs or segs[0] != "secrets":
            return _RawResponse(400, {"error": {"code": "BadParameter", "message": "?"}}, {})
        if len(segs) == 1 and method == "GET":  # list the secrets' properties (no values)
            listed = [
                {"id": f"{self.vault_url}/secrets/{n}", "attributes": v[-1]["attributes"]}
                for n, v in self.versions.items()
            ]
            return _RawResponse(200, {"value": listed, "nextLink": None}, {})
        name = segs[1]
        version = segs[2] if len(segs) > 2 else ""
        if method == "PUT":
            return _RawResponse(200, self._add(name, json.loads(body)["value"]), {})
        items = self.versions.get(name, [])
        if version:
            items = [i for i in items if i["id"].endswith("/" + version)]
        if not items:
            msg = f"A secret with (name/id) {name} was not found in this key vault."
            return _RawResponse(404, {"error": {"code": "SecretNotFound", "message": msg}}, {})
        item = items[-1]
        if method == "GET":
            return _RawResponse(200, item, {})
        if method == "PATCH":
            deep_merge(item, json.loads(body))
            return _RawResponse(200, {k: v for k, v in item.items() if k != "value"}, {})
        return _RawResponse(405, {"error": {"code": "MethodNotAllowed", "message": method}}, {})


class VaultTransport(HttpTransport):  # type: ignore[type-arg]
    def __init__(self, vault: FakeVault) -> None:
        self.vault = vault

    def send(self, request: Any, **kwargs: Any) -> Any:
        body = request.content if isinstance(request.content, bytes) else b""
        if isinstance(request.content, str):
            body = request.content.encode()
        raw = self.vault.handle(request.method, request.url, request.headers, body)
        response = RestHttpClientTransportResponse(request=request, internal_response=raw)
        response.read()
        return response

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __exit__(self, *args: Any) -> None:
        pass


class FakeCredential:
    """An Entra ID credential stand-in (the token is never checked by the fake vault)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-access-token", int(time.time()) + 3600)


@pytest.fixture
def fake_vault() -> FakeVault:
    return FakeVault()


@pytest.fixture
def vault_client(fake_vault: FakeVault) -> Any:
    from azure.keyvault.secrets import SecretClient

    return SecretClient(
        vault_url=fake_vault.vault_url,
        credential=FakeCredential(),
        transport=VaultTransport(fake_vault),
    )


# --- what a deploy needs, over loopback (ops.preflight) ----------------------------------------
@dataclass
class FakeDeployTarget:
    """Pulumi Cloud (ESC open, stack export), a Kubernetes API, Grafana and a registry on one
    loopback server; each test removes what it wants missing."""

    url: str = ""
    pulumi_token: str = "pul-token"
    esc: dict[str, dict] = field(default_factory=dict)  # "org/project/env" -> values
    stacks: dict[str, dict] = field(default_factory=dict)  # "org/project/stack" -> outputs
    kube_up: bool = True
    crds: set[str] = field(default_factory=set)
    storage_classes: set[str] = field(default_factory=set)
    ingress_classes: set[str] = field(default_factory=set)
    cluster_issuers: set[str] = field(default_factory=set)
    ingresses: dict[str, set[str]] = field(default_factory=dict)  # namespace -> Ingress names
    grafana_token: str = "glsa-token"
    grafana_denied: set[str] = field(default_factory=set)  # paths answered 403
    registry_auth: str = "bot:ghp-token"
    images: set[str] = field(default_factory=set)  # "name:tag"
    kubeconfig: Path | None = None


def _deploy_handler() -> type[BaseHTTPRequestHandler]:
    class Handler(_JsonHandler):
        def _target(self) -> FakeDeployTarget:
            return self.owner.state

        def do_POST(self) -> None:
            t = self._target()
            path = self.path.split("?")[0]
            m = re.fullmatch(r"/api/esc/environments/([^/]+)/([^/]+)/([^/]+)/open", path)
            if not m:
                return self.send_json(404, {"message": "not found"})
            if self.headers.get("Authorization") != f"token {t.pulumi_token}":
                return self.send_json(401, {"message": "unauthorized"})
            ref = "/".join(m.groups())
            if ref not in t.esc:
                return self.send_json(404, {"message": f"environment {ref} not found"})
            self.send_json(200, {"id": ref.replace("/", "-")})

        def do_HEAD(self) -> None:
            t = self._target()
            m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path)
            if not m:
                return self.send_json(404, {})
            expected = "Basic " + base64.b64encode(t.registry_auth.encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self.send_json(401, {})
            name, tag = m.groups()
            self.send_json(200 if f"{name}:{tag}" in t.images else 404, {})

        def do_GET(self) -> None:
            t = self._target()
            path = self.path.split("?")[0]
            m = re.fullmatch(r"/api/esc/environments/([^/]+)/([^/]+)/([^/]+)/open/(.+)", path)
            if m:
                ref = "/".join(m.groups()[:3])
                values = t.esc[ref]
                return self.send_json(200, {"properties": _esc_tree(values)})
            m = re.fullmatch(r"/api/stacks/([^/]+)/([^/]+)/([^/]+)/export", path)
            if m:
                if self.headers.get("Authorization") != f"token {t.pulumi_token}":
                    return self.send_json(401, {"message": "unauthorized"})
                ref = "/".join(m.groups())
                if ref not in t.stacks:
                    return self.send_json(404, {"message": f"stack {ref} not found"})
                stack = {"type": "pulumi:pulumi:Stack", "outputs": t.stacks[ref]}
                return self.send_json(200, {"deployment": {"resources": [stack]}})
            if path.startswith("/api/folders") or path.startswith("/api/v1/provisioning"):
                if self.headers.get("Authorization") != f"Bearer {t.grafana_token}":
                    return self.send_json(401, {"message": "invalid token"})
                if path in t.grafana_denied:
                    return self.send_json(403, {"message": "permission denied"})
                return self.send_json(200, [])
            if not t.kube_up:
                return self.send_json(503, {"kind": "Status", "code": 503})
            if path.rstrip("/") == "/version":
                version = {"major": "1", "minor": "33", "gitVersion": "v1.33.0"}
                extra = ("gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler")
                version |= {k: "fake" for k in extra} | {"platform": "linux/amd64"}
                return self.send_json(200, version)
            m = re.fullmatch(
                r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/ingresses/([^/]+)", path
            )
            if m:
                namespace, name = m.groups()
                if name in t.ingresses.get(namespace, set()):
                    meta = {"name": name, "namespace": namespace}
                    return self.send_json(200, {"kind": "Ingress", "metadata": meta})
                return self.send_json(404, {"kind": "Status", "code": 404})
            for prefix, names in (
                ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/", t.crds),
                ("/apis/storage.k8s.io/v1/storageclasses/", t.storage_classes),
                ("/apis/networking.k8s.io/v1/ingressclasses/", t.ingress_classes),
                ("/apis/cert-manager.io/v1/clusterissuers/", t.cluster_issuers),
            ):
                if path.startswith(prefix):
                    name = path.removeprefix(prefix)
                    if name in names:
                        return self.send_json(200, {"metadata": {"name": name}})
                    return self.send_json(404, {"kind": "Status", "code": 404})
            self.send_json(404, {"kind": "Status", "code": 404})

    return Handler


def _esc_tree(value: Any) -> Any:
    """Plain values -> ESC's evaluated form (`{"value": ..., "trace": ...}` per node)."""
    if isinstance(value, dict):
        return {"value": {k: _esc_tree(v) for k, v in value.items()}, "trace": {}}
    return {"value": value, "trace": {}}


@pytest.fixture
def fake_deploy_target(tmp_path: Path) -> Iterator[FakeDeployTarget]:
    state = FakeDeployTarget()
    server = _Server(_deploy_handler())
    server.state = state  # type: ignore[attr-defined]
    state.url = server.url
    state.kubeconfig = write_kubeconfig(
        tmp_path / "preflight-kubeconfig", server.url, "deploy", "kube-token"
    )
    yield state
    server.close()
