"""ops.access check against loopback fakes: Grafana, Elasticsearch, a registry v2, a kube API
answering SelfSubjectAccessReviews, and AWS Secrets Manager (moto); each access missing in turn."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from kubernetes import client
from moto import mock_aws

from app.contracts import STACK_SECRET_KEYS, secret_entry_name
from ops import access
from ops.access import RUNBOOK_PERMISSIONS, AccessTargets, run_checks
from ops.secret_store import AwsSecretStore

DIGEST = "sha256:" + "ab" * 32
REPO = "flowchat/flowchat"


@dataclass
class World:
    """What each token may do; the fake servers answer from it."""

    grafana_token: str = "grafana-ok"
    es_key: str = "es-ok"
    registry_token: str = "pull-ok"
    folders: set[str] = field(default_factory=lambda: {"flowchat-prod"})
    indices: set[str] = field(default_factory=lambda: {"flowchat-prod"})
    digests: set[str] = field(default_factory=lambda: {DIGEST})
    allowed: set[tuple[str, str, str]] = field(
        default_factory=lambda: {(v, r, s) for v, _, r, s in RUNBOOK_PERMISSIONS}
    )
    url: str = ""


def _handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, head: bool = False) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _answer(self, head: bool = False) -> None:
            auth = self.headers.get("Authorization", "")
            path = self.path.split("?")[0]
            if path.startswith("/api/folders/"):
                if auth != f"Bearer {world.grafana_token}":
                    return self._send(401)
                uid = path.rsplit("/", 1)[1]
                return self._send(200 if uid in world.folders else 403, {"uid": uid})
            if path.endswith("/_search"):
                if auth != f"ApiKey {world.es_key}":
                    return self._send(401)
                index = path.strip("/").split("/")[0]
                return self._send(200 if index in world.indices else 403, {"hits": {}})
            if path.startswith("/v2/"):
                if auth != f"Bearer {world.registry_token}":
                    return self._send(401, head=head)
                assert "application/vnd.oci.image.index.v1+json" in self.headers["Accept"]
                digest = path.rsplit("/", 1)[1]
                return self._send(200 if digest in world.digests else 404, head=head)
            return self._send(404)

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_POST(self) -> None:
            if self.path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                return self._send(404)
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            attrs = review["spec"]["resourceAttributes"]
            key = (attrs["verb"], attrs["resource"], attrs.get("subresource") or "")
            assert attrs["namespace"] == "flowchat-prod"
            review["status"] = {"allowed": key in world.allowed}
            return self._send(201, review)

    return Handler


@pytest.fixture
def world() -> Iterator[World]:
    state = World()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def store() -> Iterator[Any]:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        for key in STACK_SECRET_KEYS:
            sm.create_secret(Name=secret_entry_name("aws", "prod", key), SecretString="value")
        yield sm


def targets(world: World, sm: Any, **tokens: str) -> AccessTargets:
    kube = client.ApiClient(client.Configuration(host=world.url))
    return AccessTargets(
        stack="prod",
        grafana_url=world.url,
        grafana_token=tokens.get("grafana", "grafana-ok"),
        elasticsearch_url=world.url,
        elasticsearch_api_key=tokens.get("es", "es-ok"),
        registry_url=world.url,
        repository=REPO,
        digest=DIGEST,
        registry_token=tokens.get("registry", "pull-ok"),
        kube=kube,
        store=AwsSecretStore(sm),
        cloud="aws",
    )


def test_every_access_present(world: World, store: Any, capsys) -> None:
    assert run_checks(targets(world, store)) == []
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok      grafana",
        "ok      logs",
        "ok      registry",
        "ok      cluster",
        "ok      secrets",
    ]
    assert "can query index flowchat-prod" in lines[1]


@pytest.mark.parametrize(
    ("missing", "breaks", "reason"),
    [
        ("grafana", lambda w, s: w.folders.clear(), "folder flowchat-prod: the token lacks"),
        ("logs", lambda w, s: w.indices.clear(), "index flowchat-prod: the token lacks"),
        ("registry", lambda w, s: w.digests.clear(), f"image {REPO}@{DIGEST}: not found"),
        (
            "cluster",
            lambda w, s: w.allowed.discard(("patch", "deployments", "")),
            "cannot patch deployments in namespace flowchat-prod",
        ),
        (
            "secrets",
            lambda w, s: s.delete_secret(
                SecretId=secret_entry_name("aws", "prod", STACK_SECRET_KEYS[0]),
                ForceDeleteWithoutRecovery=True,
            ),
            f"no entry {secret_entry_name('aws', 'prod', STACK_SECRET_KEYS[0])} in AWS",
        ),
    ],
)
def test_each_missing_access_is_named(
    world: World, store: Any, capsys, missing: str, breaks, reason: str
) -> None:
    breaks(world, store)
    assert run_checks(targets(world, store)) == [missing]
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(f"MISSING {missing}:"))
    assert reason in line
    assert sum(x.startswith("ok ") for x in out.splitlines()) == len(access.CHECKS) - 1


# what the ops commands and the runbook's kubectl lines need beyond get/list/logs/restart
OPS_COMMAND_ACTIONS = [
    (("get", "secrets", ""), "get secrets"),  # ops.stack reads the stack's Secret
    (("create", "pods", "portforward"), "create pods/portforward"),  # ops.stack port-forward
    (("list", "services", ""), "list services"),
    (("create", "pods", "exec"), "create pods/exec"),  # kubectl exec statefulset/...
    (("get", "statefulsets", ""), "get statefulsets"),
]


@pytest.mark.parametrize(("action", "named"), OPS_COMMAND_ACTIONS)
def test_the_cluster_check_asks_for_what_the_ops_commands_do(
    world: World, store: Any, capsys, action: tuple[str, str, str], named: str
) -> None:
    """Before, "ok cluster" could precede a permission failure of ops.stack or kubectl exec."""
    world.allowed.discard(action)
    assert run_checks(targets(world, store)) == ["cluster"]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("MISSING"))
    assert line == f"MISSING cluster: cannot {named} in namespace flowchat-prod"


def test_the_secrets_check_reads_metadata_only(world: World, store: Any, capsys) -> None:
    """A role allowed DescribeSecret but not GetSecretValue (metadata only) passes: the check
    never asks for a value."""
    calls: list[str] = []
    store.meta.events.register(
        "before-call.secretsmanager.*", lambda model, **kw: calls.append(model.name)
    )

    def refuse_values(**kw: Any) -> None:
        raise AssertionError("the access check read a secret value")

    store.meta.events.register("before-call.secretsmanager.GetSecretValue", refuse_values)
    assert run_checks(targets(world, store)) == []
    assert "GetSecretValue" not in calls
    assert calls.count("DescribeSecret") == len(STACK_SECRET_KEYS)
    assert "(metadata)" in capsys.readouterr().out


def test_an_entry_scheduled_for_deletion_is_missing(world: World, store: Any, capsys) -> None:
    name = secret_entry_name("aws", "prod", STACK_SECRET_KEYS[-1])
    store.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert run_checks(targets(world, store)) == ["secrets"]
    assert f"no entry {name} in AWS Secrets Manager" in capsys.readouterr().out


def test_a_wrong_token_is_named_and_never_printed(world: World, store: Any, capsys) -> None:
    assert run_checks(targets(world, store, registry="stolen-token", es="bad-key")) == [
        "logs",
        "registry",
    ]
    out = capsys.readouterr().out
    assert "the token is refused (401)" in out
    assert "stolen-token" not in out and "bad-key" not in out


def test_cli_without_tokens_exits_1_naming_them(capsys) -> None:
    argv = ["check", "--stack", "prod", "--grafana-url", "http://g", "--elasticsearch-url"]
    argv += ["http://e", "--image", "ghcr.io/flowchat/flowchat", "--digest", DIGEST]
    assert access.main(argv, {}) == 1
    err = capsys.readouterr().err
    assert "GRAFANA_TOKEN, ELASTICSEARCH_API_KEY, REGISTRY_TOKEN" in err


def test_cli_names_missing_accesses(world: World, store: Any, capsys, monkeypatch) -> None:
    monkeypatch.setattr(access, "_targets", lambda args, env: targets(world, store))
    world.indices.clear()
    argv = ["check", "--stack", "prod", "--grafana-url", "x", "--elasticsearch-url", "x"]
    argv += ["--image", "ghcr.io/flowchat/flowchat", "--digest", DIGEST]
    assert access.main(argv, {}) == 1
    assert capsys.readouterr().err.strip() == "error: missing access: logs"
