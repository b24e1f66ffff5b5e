"""Before a deploy: name every missing prerequisite of a stack, one line each.

    python -m ops.preflight --stack staging [--offline]

Checks, in order (each problem is one line; exit 1 when there is any, 0 when none):
1. placeholders (`stacks.placeholders`) in the stack file, its attached ESC definitions and the
   platform stack file, named by file and key; online, also in the ids the opened ESC environment
   delivers (bootstrap writes them into `flowchat/<stack>-ids`), and each missing one;
2. the stack's config parses (`stacks.config`);
3. every ESC environment the stack attaches opens (Pulumi Cloud REST API, `PULUMI_ACCESS_TOKEN`
   from pulumi/auth-actions) and delivers the secret config the program reads;
4. the platform's values (the platform stack's outputs, or `platform.external`);
5. the cluster answers (KUBECONFIG) and has every CRD, storage class, IngressClass and
   ClusterIssuer the service uses;
6. the Grafana token may read folders and alert rules;
7. the registry serves the image with the pull credentials the cluster gets;
8. the service's hostname resolves, once the service's Ingress exists: before the first deploy
   the record may not exist yet (on AKS app routing's external-dns writes it from the Ingress
   this deploy creates), so a missing record is a note, not a problem.
`--offline` runs 1-2 only (the first step of a deploy job, before any login).

Every live check goes through an injectable client (`Clients`), so tests drive them against
servers on loopback.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.contracts import API_DEPLOYMENT
from stacks import esc, placeholders
from stacks.config import (
    GRAFANA_AUTH_KEY,
    REGISTRY_AUTH_KEY,
    SECRET_CONFIG_KEYS,
    ConfigError,
    StackConfig,
    esc_id_keys,
    parse_config,
)
from stacks.config_types import ImageConfig
from stacks.platform_ref import OUTPUT_NAMES, PlatformOutputs
from stacks.registry import registry_host
from stacktools.render import PROJECT, REPO_ROOT, load_stack_file, stack_config

PULUMI_API = "https://api.pulumi.com"
PLATFORM_DIR = "platform_stack"
ESC_DIR = Path("deploy") / "esc"
# custom resources the service stack creates or needs (ExternalSecret, KEDA, Prometheus Operator,
# cert-manager's ClusterIssuer behind the Ingress annotation)
REQUIRED_CRDS = (
    "externalsecrets.external-secrets.io",
    "secretstores.external-secrets.io",
    "scaledobjects.keda.sh",
    "triggerauthentications.keda.sh",
    "servicemonitors.monitoring.coreos.com",
    "probes.monitoring.coreos.com",
    "clusterissuers.cert-manager.io",
)
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TIMEOUT = 20.0
RAW = {"_preload_content": False}  # only whether an object exists matters, not its model


class PulumiCloud:
    """Pulumi Cloud REST: open an ESC environment, read a stack's outputs."""

    def __init__(self, http: httpx.Client, token: str, base_url: str = PULUMI_API) -> None:
        self.http, self.base = http, base_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}", "Accept": "application/json"}

    def open_environment(self, org: str, ref: str) -> dict[str, Any]:
        """The plain values of `ref` (PROJECT/ENV) once opened; raises on any refusal."""
        project, env = ref.split("/", 1)
        url = f"{self.base}/api/esc/environments/{org}/{project}/{env}/open"
        opened = self.http.post(url, headers=self.headers, params={"duration": "5m"})
        opened.raise_for_status()
        session = opened.json()["id"]
        values = self.http.get(f"{url}/{session}", headers=self.headers)
        values.raise_for_status()
        return _esc_plain(values.json())

    def stack_outputs(self, org: str, project: str, stack: str) -> dict[str, Any]:
        url = f"{self.base}/api/stacks/{org}/{project}/{stack}/export"
        response = self.http.get(url, headers=self.headers)
        response.raise_for_status()
        resources = (response.json().get("deployment") or {}).get("resources") or []
        for resource in resources:
            if resource.get("type") == "pulumi:pulumi:Stack":
                return dict(resource.get("outputs") or {})
        return {}


def _esc_plain(value: Any) -> Any:
    """ESC's evaluated tree (`{"value": ..., "trace": ...}` at each node) -> plain values."""
    if isinstance(value, dict):
        if "value" in value and set(value) <= {"value", "trace", "secret", "unknown"}:
            return _esc_plain(value["value"])
        if "properties" in value and set(value) <= {"properties", "trace"}:
            return _esc_plain(value["properties"])
        return {k: _esc_plain(v) for k, v in value.items() if k != "trace"}
    if isinstance(value, list):
        return [_esc_plain(v) for v in value]
    return value


def _resolve(host: str) -> None:
    socket.getaddrinfo(host, 443)


@dataclass
class Clients:
    """What the live checks talk to; tests pass loopback stand-ins."""

    http: httpx.Client
    cloud: PulumiCloud | None
    kube_api: Callable[[], Any]  # -> kubernetes.client.ApiClient (from KUBECONFIG)
    resolve: Callable[[str], None] = _resolve
    registry_scheme: str = "https"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checks: int = 0
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    def check(self, problem: str | None) -> None:
        self.checks += 1
        if problem:
            self.problems.append(problem)


# --- 1. placeholders -------------------------------------------------------------------------
def placeholder_problems(stack: str, root: Path = REPO_ROOT) -> list[str]:
    files = [root / f"Pulumi.{stack}.yaml", root / PLATFORM_DIR / f"Pulumi.{stack}.yaml"]
    doc = yaml.safe_load(files[0].read_text()) if files[0].exists() else {}
    for ref in (doc or {}).get("environment") or []:
        files.append(root / ESC_DIR / f"{ref.replace('/', '-')}.yaml")
    problems = []
    for path in files:
        if not path.exists():
            continue
        for key, kind in placeholders.find(yaml.safe_load(path.read_text()) or {}):
            rel = path.relative_to(root)
            problems.append(f"{rel}: {key} holds a placeholder ({kind}); put the real value")
    return problems


# --- 2. config ---------------------------------------------------------------------------------
def load_stack(
    stack: str, secrets: Mapping[str, str] | None, root: Path = REPO_ROOT
) -> tuple[StackConfig | None, list[str]]:
    """The stack's config with the secret config ESC delivered (`secrets`, unqualified keys);
    None: placeholders stand in for the secret keys (the offline check)."""
    values, _ = stack_config(stack, project_dir=root, offline_secrets=secrets is None)
    raw = {k.removeprefix(f"{PROJECT}:"): v for k, v in values.items() if k.startswith(PROJECT)}
    raw.update(secrets or {})
    try:
        return parse_config(stack, raw, frozenset(SECRET_CONFIG_KEYS)), []
    except ConfigError as exc:
        return None, [f"config: {p}" for p in exc.problems]


# --- 3. ESC ------------------------------------------------------------------------------------
def esc_secrets(
    stack: str, org: str, cloud: PulumiCloud | None, report: Report, root: Path = REPO_ROOT
) -> dict[str, str]:
    """Open each attached environment; the secret config keys it delivers (unqualified)."""
    delivered: dict[str, str] = {}
    for ref in load_stack_file(stack, root).get("environment") or []:
        if cloud is None:
            report.check(
                f"ESC environment {org}/{ref}: no Pulumi Cloud token (PULUMI_ACCESS_TOKEN)"
            )
            continue
        try:
            values = cloud.open_environment(org, ref)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            report.check(f"ESC environment {org}/{ref} does not open: {_why(exc)}")
            continue
        report.check(None)
        for key, value in (values.get("pulumiConfig") or {}).items():
            if str(key).startswith(f"{PROJECT}:") and value not in (None, ""):
                delivered[str(key).split(":", 1)[1]] = str(value)
    return delivered


def esc_id_problems(
    stack: str, org: str, delivered: Mapping[str, str], root: Path = REPO_ROOT
) -> list[str]:
    """Each id the stack reads from ESC (stacks.config.ESC_ID_KEYS; bootstrap writes them into
    `flowchat/<stack>-ids`) is delivered and is not a placeholder: one line, file and key."""
    doc = load_stack_file(stack, root)
    cloud = str((doc.get("config") or {}).get(f"{PROJECT}:cloud", "azure"))
    refs = doc.get("environment") or []
    where = ", ".join(str(ESC_DIR / f"{ref.replace('/', '-')}.yaml") for ref in refs) or (
        f"Pulumi.{stack}.yaml (no ESC environment)"
    )
    problems = []
    for key in esc_id_keys(cloud):
        value = delivered.get(key)
        if not value:
            problems.append(
                f"{where}: values.pulumiConfig.{PROJECT}:{key} is not delivered by "
                f"{', '.join(f'{org}/{r}' for r in refs) or 'any ESC environment'} "
                f"(bootstrap writes the id into {esc.ids_environment(stack)})"
            )
        elif kind := placeholders.placeholder_kind(value):
            problems.append(
                f"{where}: values.pulumiConfig.{PROJECT}:{key} holds a placeholder ({kind}); "
                f"run the bootstrap program, which writes {esc.ids_environment(stack)}"
            )
    return problems


def _why(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url.host}"
    return str(exc) or type(exc).__name__


# --- 4. platform -------------------------------------------------------------------------------
def platform_values(
    config: StackConfig, org: str, cloud: PulumiCloud | None, report: Report
) -> PlatformOutputs | None:
    if config.platform.external is not None:
        return config.platform.external
    parts = str(config.platform.stack).split("/")
    ref_org, project, stack = parts if len(parts) == 3 else [org, *parts]
    name = f"{ref_org}/{project}/{stack}"
    if cloud is None:
        report.check(f"platform stack {name}: no Pulumi Cloud token to read its outputs")
        return None
    try:
        outputs = cloud.stack_outputs(ref_org, project, stack)
    except httpx.HTTPError as exc:
        report.check(f"platform stack {name} cannot be read: {_why(exc)}")
        return None
    required = {f.alias or n for n, f in PlatformOutputs.model_fields.items() if f.is_required()}
    missing = [
        n for n in OUTPUT_NAMES if n not in outputs or (n in required and outputs[n] in (None, ""))
    ]
    for output in missing:
        report.check(f"platform stack {name} has no output {output}")
    if missing:
        return None
    report.check(None)
    return PlatformOutputs.model_validate({n: outputs[n] for n in OUTPUT_NAMES})


# --- 5. cluster --------------------------------------------------------------------------------
def cluster_problems(
    platform: PlatformOutputs, kube_api: Callable[[], Any], report: Report
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        api = kube_api()
        client.VersionApi(api).get_code(**RAW)
    except Exception as exc:  # any failure means: no cluster to deploy to
        report.check(f"cluster {platform.cluster_name} is unreachable: {_short(exc)}")
        return
    report.check(None)

    def exists(what: str, read: Callable[[], Any]) -> None:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                report.check(f"cluster {platform.cluster_name} has no {what}")
            else:
                report.check(
                    f"cluster {platform.cluster_name}: cannot read {what} (HTTP {exc.status})"
                )
        else:
            report.check(None)

    extensions = client.ApiextensionsV1Api(api)
    for crd in REQUIRED_CRDS:
        exists(f"CRD {crd}", lambda crd=crd: extensions.read_custom_resource_definition(crd, **RAW))
    storage = client.StorageV1Api(api)
    for cls in dict.fromkeys((platform.storage_class, platform.shared_storage_class)):
        exists(f"storage class {cls}", lambda cls=cls: storage.read_storage_class(cls, **RAW))
    networking = client.NetworkingV1Api(api)
    exists(
        f"IngressClass {platform.ingress_class}",
        lambda: networking.read_ingress_class(platform.ingress_class, **RAW),
    )
    custom = client.CustomObjectsApi(api)
    exists(
        f"ClusterIssuer {platform.cluster_issuer}",
        lambda: custom.get_cluster_custom_object(
            "cert-manager.io", "v1", "clusterissuers", platform.cluster_issuer, **RAW
        ),
    )


def ingress_exists(namespace: str, kube_api: Callable[[], Any]) -> bool | None:
    """Whether the service's Ingress (stacks.routing.ingress: named API_DEPLOYMENT in the
    stack's namespace) exists; None when the cluster does not say (already reported)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        networking = client.NetworkingV1Api(kube_api())
        networking.read_namespaced_ingress(API_DEPLOYMENT, namespace, **RAW)
    except ApiException as exc:
        return False if exc.status == 404 else None
    except Exception:  # unreachable: cluster_problems names it
        return None
    return True


def hostname_problem(hostname: str, namespace: str, clients: Clients, report: Report) -> None:
    """The hostname resolves; before the first deploy (no Ingress yet) a missing record is a
    note: app routing's external-dns (AKS) writes it from the Ingress this deploy creates."""
    try:
        clients.resolve(hostname)
    except OSError as exc:
        if ingress_exists(namespace, clients.kube_api) is False:
            report.notes.append(
                f"hostname {hostname} not checked: first deploy, the record is written from "
                f"the Ingress ({namespace}/{API_DEPLOYMENT} does not exist yet)"
            )
            return
        report.check(f"hostname {hostname} does not resolve: {_short(exc)}")
    else:
        report.check(None)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# --- 6. Grafana --------------------------------------------------------------------------------
GRAFANA_READS = (("folders", "/api/folders"), ("alert rules", "/api/v1/provisioning/alert-rules"))


def grafana_problem(config: StackConfig, http: httpx.Client) -> list[str]:
    url, auth = config.grafana.url, config.grafana.auth
    if not url or auth is None:
        return [f"Grafana: no {'url' if not url else 'token (flowchat:grafanaAuth)'}"]
    secret = auth.get_secret_value()
    if ":" in secret:
        header = "Basic " + base64.b64encode(secret.encode()).decode()
    else:
        header = f"Bearer {secret}"
    problems = []
    for what, path in GRAFANA_READS:
        try:
            response = http.get(url.rstrip("/") + path, headers={"Authorization": header})
        except httpx.HTTPError as exc:
            return [f"Grafana at {url} is unreachable: {_why(exc)}"]
        if response.status_code in (401, 403):
            status = response.status_code
            problems.append(f"the Grafana token may not read {what} at {url} (HTTP {status})")
        elif response.status_code >= 400:
            problems.append(f"Grafana at {url}: reading {what} fails (HTTP {response.status_code})")
    return problems


# --- 7. image ----------------------------------------------------------------------------------
def image_problem(config: StackConfig, http: httpx.Client, scheme: str = "https") -> str | None:
    image = config.image
    host = registry_host(image.repository)
    if host.startswith("https://"):  # Docker Hub
        host, name = "registry-1.docker.io", image.repository
        name = name if "/" in name else f"library/{name}"
    else:
        name = image.repository.split("/", 1)[1]
    url = f"{scheme}://{host}/v2/{name}/manifests/{image.tag}"
    basic = None
    if image.pull_auth is not None:
        basic = "Basic " + base64.b64encode(image.pull_auth.get_secret_value().encode()).decode()
    headers = {"Accept": MANIFEST_TYPES, **({"Authorization": basic} if basic else {})}
    try:
        response = http.head(url, headers=headers)
        if response.status_code == 401:
            token = _bearer_token(http, response.headers.get("www-authenticate", ""), basic)
            if token:
                headers["Authorization"] = f"Bearer {token}"
                response = http.head(url, headers=headers)
    except httpx.HTTPError as exc:
        return f"registry {host} is unreachable: {_why(exc)}"
    if response.status_code == 200:
        return None
    how = "with the pull credentials (flowchat:registryAuth)" if basic else "anonymously"
    return (
        f"the cluster cannot pull {image.ref} {how}: registry answers HTTP {response.status_code}"
    )


def _bearer_token(http: httpx.Client, challenge: str, basic: str | None) -> str | None:
    """Docker registry token flow: `Bearer realm=...,service=...,scope=...`."""
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm:
        return None
    response = http.get(realm, params=params, headers={"Authorization": basic} if basic else {})
    if response.status_code != 200:
        return None
    body = response.json()
    return body.get("token") or body.get("access_token")


def deployed_image(ref: str) -> tuple[str, str]:
    """`REPO@sha256:DIGEST` (what deploy.yml pushed) -> (repository, digest), validated as the
    stack's flowchat:image is; argparse type of --image."""
    repository, sep, digest = ref.partition("@")
    if not sep:
        raise argparse.ArgumentTypeError(f"{ref}: expected REPOSITORY@sha256:DIGEST")
    try:
        ImageConfig(repository=repository, tag=digest)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{ref}: {exc}") from exc
    if not digest.startswith("sha256:"):
        raise argparse.ArgumentTypeError(f"{ref}: expected a sha256 digest after @")
    return repository, digest


# --- the command -------------------------------------------------------------------------------
def preflight(
    stack: str,
    *,
    org: str,
    clients: Clients | None,
    root: Path = REPO_ROOT,
    image: tuple[str, str] | None = None,
) -> Report:
    """Every check for `stack`; `clients` None runs only the offline ones. `image` (repository,
    digest) is the image this deploy ships, checked instead of the stack file's flowchat:image
    (deploy.yml passes it to `pulumi up` the same way)."""
    report = Report()
    for problem in placeholder_problems(stack, root):
        report.check(problem)
    if clients is None:
        _, problems = load_stack(stack, None, root)
        for problem in problems or [None]:
            report.check(problem)
        return report
    secrets = esc_secrets(stack, org, clients.cloud, report, root)
    for key in (GRAFANA_AUTH_KEY, REGISTRY_AUTH_KEY):
        if key not in secrets:
            report.check(f"secret config flowchat:{key} is not delivered by the ESC environment")
    for problem in esc_id_problems(stack, org, secrets, root) or [None]:
        report.check(problem)
    config, problems = load_stack(stack, secrets, root)
    for problem in problems:
        report.check(problem)
    if config is None:
        return report
    if image is not None:
        repository, digest = image
        shipped = config.image.model_copy(update={"repository": repository, "tag": digest})
        config = config.model_copy(update={"image": shipped})
    platform = platform_values(config, org, clients.cloud, report)
    if platform is not None:
        if config.namespace in platform.service_namespaces:
            report.check(None)
        else:  # namespaces are cluster-scoped: the deploy identity cannot create its own
            report.check(
                f"namespace {config.namespace} is not one the platform created "
                f"(serviceNamespaces: {', '.join(platform.service_namespaces) or 'none'})"
            )
        cluster_problems(platform, clients.kube_api, report)
        hostname_problem(platform.hostname, config.namespace, clients, report)
    for problem in grafana_problem(config, clients.http) or [None]:
        report.check(problem)
    report.check(image_problem(config, clients.http, clients.registry_scheme))
    return report


def _kube_api_from_env() -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="python -m ops.preflight",
        description="Name every missing prerequisite of a stack's deploy, one line each.",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--org", default=env.get("PULUMI_ORG", ""), help="Pulumi organization")
    parser.add_argument("--offline", action="store_true", help="files and config only")
    parser.add_argument(
        "--image",
        type=deployed_image,
        help="REPOSITORY@sha256:DIGEST the deploy ships (default: the stack file's flowchat:image)",
    )
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    if not (REPO_ROOT / f"Pulumi.{args.stack}.yaml").exists():
        print(f"preflight: no stack file Pulumi.{args.stack}.yaml", file=sys.stderr)
        return 2
    if args.offline:
        report = preflight(args.stack, org=args.org, clients=None)
    else:
        with httpx.Client(timeout=TIMEOUT) as http:
            token = env.get("PULUMI_ACCESS_TOKEN", "")
            cloud = PulumiCloud(http, token, env.get("PULUMI_BACKEND_URL", PULUMI_API))
            clients = Clients(
                http=http, cloud=cloud if token else None, kube_api=_kube_api_from_env
            )
            report = preflight(args.stack, org=args.org, clients=clients, image=args.image)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"missing: {problem}")
    if report.problems:
        print(f"preflight {args.stack}: {len(report.problems)} of {report.checks} checks failed")
        return 1
    print(f"preflight {args.stack}: all {report.checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = [
    "Clients",
    "PulumiCloud",
    "Report",
    "build_parser",
    "main",
    "placeholder_problems",
    "preflight",
]
