"""On-call access check: ``python -m ops.access check --stack S``, one line per access.

The runbook's on-call checklist asks to confirm access to the dashboard, the log store and the
registry; this checks, in one run, with what the on-call engineer holds:

- grafana: the token can read the stack's folder (``GET /api/folders/flowchat-<stack>``);
- logs: the log store can be queried on the stack's index (``GET /flowchat-<stack>/_search``
  with ``size=0`` on Elasticsearch; the index log shipping writes, platform_stack/log_shipping.py);
- registry: the deployed digest can be pulled (a registry v2 manifest ``HEAD`` with the pull
  token);
- cluster: ``kubectl auth can-i`` for every verb/resource the runbook uses, as
  SelfSubjectAccessReviews through the kubernetes client;
- secrets: the secret manager's entries of the stack exist and their metadata can be read
  (ops.secret_store ``missing``: DescribeSecret / Key Vault's list of properties); no value is
  read, so a metadata-only role passes.

Exit status 0 when every access is there, 1 naming each missing one. Tokens are read from the
environment (GRAFANA_TOKEN, ELASTICSEARCH_API_KEY, REGISTRY_TOKEN) and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from app.contracts import (
    APP_NAME,
    EXTERNAL_SECRETS_GROUP,
    STACK_SECRET_KEYS,
    namespace_for,
    secret_entry_name,
)
from ops.secret_store import SecretStore
from ops.summary import OpsError, fail, say

# What the runbook and the ops commands do in the cluster, the one table `kubectl auth can-i` is
# asked from: (verb, group, resource, subresource) -> who needs it.
RUNBOOK_ACTIONS: Final[dict[tuple[str, str, str, str], str]] = {
    ("get", "", "pods", ""): "kubectl get/describe pod",
    ("list", "", "pods", ""): "kubectl get pods",
    ("get", "", "pods", "log"): "kubectl logs",
    ("get", "apps", "deployments", ""): "kubectl get deployment",
    ("patch", "apps", "deployments", ""): "kubectl rollout restart",
    ("patch", "apps", "statefulsets", ""): "kubectl rollout restart statefulset/... (runbook)",
    ("get", "networking.k8s.io", "ingresses", ""): "kubectl get ingress",
    ("get", EXTERNAL_SECRETS_GROUP, "externalsecrets", ""): "kubectl get externalsecret",
    ("patch", EXTERNAL_SECRETS_GROUP, "externalsecrets", ""): "ExternalSecret force sync",
    ("get", "", "secrets", ""): "ops.stack (reads the stack's Secret)",
    ("get", "", "services", ""): "ops.stack (kubectl port-forward svc/flowchat-redis)",
    ("list", "", "services", ""): "kubectl get services",
    ("create", "", "pods", "portforward"): "ops.stack (port-forward)",
    ("create", "", "pods", "exec"): "kubectl exec statefulset/... (runbook)",
    ("get", "apps", "statefulsets", ""): "kubectl exec statefulset/... (resolves the pod)",
}
RUNBOOK_PERMISSIONS: Final[tuple[tuple[str, str, str, str], ...]] = tuple(RUNBOOK_ACTIONS)
MANIFEST_TYPES: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def log_index(stack: str) -> str:
    """The Elasticsearch index of a stack's logs (log shipping writes it)."""
    return f"{APP_NAME}-{stack}"


def folder_uid(stack: str) -> str:
    """The stack's Grafana folder (stacks.monitoring creates it with this uid)."""
    return f"{APP_NAME}-{stack}"


@dataclass
class AccessTargets:
    stack: str
    grafana_url: str
    grafana_token: str
    elasticsearch_url: str
    elasticsearch_api_key: str
    registry_url: str  # e.g. https://ghcr.io
    repository: str  # e.g. flowchat/flowchat
    digest: str  # sha256:...
    registry_token: str
    kube: Any  # kubernetes.client.ApiClient
    store: SecretStore
    cloud: str
    namespace: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=20))

    def __post_init__(self) -> None:
        self.namespace = self.namespace or namespace_for(self.stack)


def _status(http: httpx.Client, method: str, url: str, headers: Mapping[str, str]) -> int:
    try:
        return http.request(method, url, headers=dict(headers)).status_code
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot reach {url.split('?')[0]} ({type(exc).__name__})") from None


def _expect_ok(what: str, status: int) -> None:
    if status == 401:
        raise OpsError(f"{what}: the token is refused (401)")
    if status == 403:
        raise OpsError(f"{what}: the token lacks permission (403)")
    if status == 404:
        raise OpsError(f"{what}: not found or not visible to this token (404)")
    if status >= 300:
        raise OpsError(f"{what}: answered {status}")


def check_grafana(t: AccessTargets) -> str:
    uid = folder_uid(t.stack)
    url = f"{t.grafana_url.rstrip('/')}/api/folders/{uid}"
    status = _status(t.http, "GET", url, {"Authorization": f"Bearer {t.grafana_token}"})
    _expect_ok(f"folder {uid}", status)
    return f"can read folder {uid}"


def check_logs(t: AccessTargets) -> str:
    index = log_index(t.stack)
    url = f"{t.elasticsearch_url.rstrip('/')}/{index}/_search?size=0"
    status = _status(t.http, "GET", url, {"Authorization": f"ApiKey {t.elasticsearch_api_key}"})
    _expect_ok(f"index {index}", status)
    return f"can query index {index}"


def check_registry(t: AccessTargets) -> str:
    ref = f"{t.repository}@{t.digest}"
    url = f"{t.registry_url.rstrip('/')}/v2/{t.repository}/manifests/{t.digest}"
    headers = {"Authorization": f"Bearer {t.registry_token}", "Accept": MANIFEST_TYPES}
    _expect_ok(f"image {ref}", _status(t.http, "HEAD", url, headers))
    return f"can pull {ref}"


def check_cluster(t: AccessTargets) -> str:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.AuthorizationV1Api(t.kube)
    denied = []
    for verb, group, resource, sub in RUNBOOK_PERMISSIONS:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=t.namespace,
                    verb=verb,
                    group=group,
                    resource=resource,
                    subresource=sub or None,
                )
            )
        )
        try:
            answer = api.create_self_subject_access_review(review)
        except ApiException as exc:
            raise OpsError(f"the cluster refused the access review ({exc.status})") from None
        except Exception as exc:  # urllib3 connection errors
            raise OpsError(f"cannot reach the cluster ({type(exc).__name__})") from None
        if not (answer.status and answer.status.allowed):
            what = f"{resource}/{sub}" if sub else resource
            denied.append(f"{verb} {what}")
    if denied:
        raise OpsError(f"cannot {', '.join(denied)} in namespace {t.namespace}")
    return f"can {len(RUNBOOK_PERMISSIONS)} runbook actions in namespace {t.namespace}"


def check_secrets(t: AccessTargets) -> str:
    names = [secret_entry_name(t.cloud, t.stack, key) for key in STACK_SECRET_KEYS]
    absent = t.store.missing(names)  # metadata only: no value is read
    if absent:
        raise OpsError(f"no entry {', '.join(absent)} in {t.store.description}")
    return f"can see {len(names)} entries in {t.store.description} (metadata)"


CHECKS: Final[tuple[tuple[str, Callable[[AccessTargets], str]], ...]] = (
    ("grafana", check_grafana),
    ("logs", check_logs),
    ("registry", check_registry),
    ("cluster", check_cluster),
    ("secrets", check_secrets),
)


def run_checks(targets: AccessTargets) -> list[str]:
    """Run every check, print one line each; return the names of the missing accesses."""
    missing = []
    for name, check in CHECKS:
        try:
            say(f"ok      {name}: {check(targets)}")
        except OpsError as exc:
            say(f"MISSING {name}: {exc}")
            missing.append(name)
    return missing


def _targets(args: argparse.Namespace, env: Mapping[str, str]) -> AccessTargets:
    from ops.kube import load_api_client
    from ops.rotate_credentials import cloud_of_stack
    from ops.secret_store import open_store

    needed = ("GRAFANA_TOKEN", "ELASTICSEARCH_API_KEY", "REGISTRY_TOKEN")
    absent = [name for name in needed if not env.get(name)]
    if absent:
        raise OpsError(f"set {', '.join(absent)} (the tokens the on-call engineer holds)")
    cloud = cloud_of_stack(args.stack)
    registry, _, repository = args.image.partition("/")
    return AccessTargets(
        stack=args.stack,
        grafana_url=args.grafana_url,
        grafana_token=env["GRAFANA_TOKEN"],
        elasticsearch_url=args.elasticsearch_url,
        elasticsearch_api_key=env["ELASTICSEARCH_API_KEY"],
        registry_url=f"https://{registry}",
        repository=repository,
        digest=args.digest,
        registry_token=env["REGISTRY_TOKEN"],
        kube=load_api_client(args.context),
        store=open_store(cloud, args.stack),
        cloud=cloud,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.access", description="Check the on-call engineer's accesses."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="one line per access; exit 1 naming the missing ones")
    check.add_argument("--stack", required=True, choices=("staging", "prod"))
    check.add_argument("--grafana-url", required=True)
    check.add_argument("--elasticsearch-url", required=True)
    check.add_argument("--image", required=True, help="REGISTRY/REPOSITORY, e.g. ghcr.io/o/r")
    check.add_argument("--digest", required=True, help="the deployed digest (sha256:...)")
    check.add_argument("--context", help="kubeconfig context (default: the current one)")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        targets = _targets(args, os.environ if env is None else env)
        missing = run_checks(targets)
    except OpsError as exc:
        return fail(str(exc))
    if missing:
        return fail(f"missing access: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
