"""Log shipping: Fluent Bit (Helm release) reads the pods' JSON lines into the team's Elasticsearch.

`LogShipping` installs the `fluent/fluent-bit` chart (version pinned, `CHART_VERSION`) as a
DaemonSet in its own namespace. The pipeline (`fluent_bit_config`, classic format, rendered into
the chart's `config.*` values):

1. INPUT tail on `/var/log/containers/*.log` (the kubelet's files), `multiline.parser cri`: the
   CRI parser turns each line back into the container's output in the `log` field;
2. FILTER kubernetes: pod, namespace, labels and container from the API server, matched to the
   file name; only the service's namespace goes on (FILTER grep on `kubernetes.namespace_name`);
3. FILTER parser on the `log` field with the `json` parser: the app's JSON line
   (app/observability/logs.py) becomes the record's fields;
4. FILTER record_modifier `Allowlist_Key`: only the fields the app writes (`INDEXED_FIELDS`,
   derived from the app's logging module) and the kubernetes block are indexed, nothing else;
5. OUTPUT es to the Elasticsearch URL from config, index `flowchat-<stack>` (what
   `ops.access check` queries), TLS on, the API key from the environment variable
   `ES_API_KEY`, taken from the Secret `credentials_secret` (key `apiKey`).

That Secret comes from the cloud's secret manager, the way the service stack's does
(stacks/secrets.py): in the logging namespace, a ServiceAccount carrying an existing identity
(IRSA role on EKS, workload identity on AKS: `flowchat-platform:logs.roleArn` / `clientId`), a
SecretStore (provider aws SecretsManager / azurekv) authenticating as it, and an ExternalSecret
copying the entry `api_key_entry` (Elasticsearch's base64 "encoded" API key) into the Secret;
the release waits for it to be Ready. Nothing else writes the key: store it in the secret
manager under that entry before enabling logs (docs/runbook.md, Logs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from app.contracts import APP_NAME, EXTERNAL_SECRETS_API, key_vault_name, namespace_for
from app.observability.logs import EXTRA_FIELDS, LOG_FIELDS
from stacks.secrets import REFRESH_INTERVAL, WAIT_FOR_ANNOTATION, WAIT_FOR_READY

# renovate: helm chart (renovate.json reads the next three lines: name, repository, version)
CHART: Final = "fluent-bit"
CHART_REPO: Final = "https://fluent.github.io/helm-charts"
CHART_VERSION: Final = "0.54.0"  # pinned; Renovate's helm manager proposes bumps
API_KEY_ENV: Final = "ES_API_KEY"
API_KEY_SECRET_KEY: Final = "apiKey"  # key of the credentials Secret
API_KEY_ENTRY_KEY: Final = "ELASTICSEARCH_API_KEY"
STORE: Final = "elasticsearch-secret-store"  # SecretStore in the logging namespace
STORE_ACCOUNT: Final = "elasticsearch-external-secrets"  # its ServiceAccount (the identity)
# every line has these (structlog: timestamp, level, logger name, process, message, traceback)
BASE_FIELDS: Final = ("timestamp", "level", "logger", "process", "message", "exception")
INDEXED_FIELDS: Final = (*BASE_FIELDS, *LOG_FIELDS, *EXTRA_FIELDS)


def log_index(stack: str) -> str:
    return f"{APP_NAME}-{stack}"


def default_api_key_entry(cloud: str, stack: str) -> str:
    """The secret-manager entry of the Elasticsearch API key (named like the stack's entries)."""
    if cloud == "aws":
        return f"{APP_NAME}/{stack}/{API_KEY_ENTRY_KEY}"
    return API_KEY_ENTRY_KEY.lower().replace("_", "-")


@dataclass(frozen=True)
class ApiKeyStore:
    """Where External Secrets reads the API key: the SecretStore's provider block and the
    annotations that bind its ServiceAccount to the cloud identity."""

    entry: str
    provider: dict[str, Any]
    account_annotations: dict[str, str]


def aws_store(stack: str, region: str, role_arn: str, entry: str = "") -> ApiKeyStore:
    if not role_arn.startswith("arn:aws"):
        raise ValueError("logs on aws needs roleArn (the IRSA role that reads the API key)")
    return ApiKeyStore(
        entry=entry or default_api_key_entry("aws", stack),
        provider={
            "aws": {
                "service": "SecretsManager",
                "region": region,
                "auth": {"jwt": {"serviceAccountRef": {"name": STORE_ACCOUNT}}},
            }
        },
        account_annotations={"eks.amazonaws.com/role-arn": role_arn},
    )


def azure_store(
    stack: str, client_id: str, tenant_id: str, vault_name: str = "", entry: str = ""
) -> ApiKeyStore:
    if not client_id or not tenant_id:
        raise ValueError("logs on azure needs clientId and tenantId (the workload identity)")
    return ApiKeyStore(
        entry=entry or default_api_key_entry("azure", stack),
        provider={
            "azurekv": {
                "tenantId": tenant_id,
                "vaultUrl": f"https://{vault_name or key_vault_name(stack)}.vault.azure.net",
                "authType": "WorkloadIdentity",
                "serviceAccountRef": {"name": STORE_ACCOUNT},
            }
        },
        account_annotations={
            "azure.workload.identity/client-id": client_id,
            "azure.workload.identity/tenant-id": tenant_id,
        },
    )


@dataclass
class LogShippingArgs:
    stack: str
    elasticsearch_url: str  # https://es.example.com:9243 (flowchat-platform:logs.elasticsearchUrl)
    credentials_secret: str  # Secret (in `namespace`) the ExternalSecret writes, key `apiKey`
    store: ApiKeyStore  # the secret-manager entry and the identity reading it
    namespace: str = "logging"
    service_namespace: str = ""  # default: the stack's namespace (app.contracts.namespace_for)
    chart_version: str = CHART_VERSION
    # the External Secrets release (its CRDs): the SecretStore and ExternalSecret wait for it
    # (a component's depends_on does not reach its children)
    crds: Sequence[pulumi.Resource] = ()


def _section(kind: str, **props: Any) -> str:
    width = max(len(k) for k in props)
    lines = [f"[{kind}]"]
    for key, value in props.items():
        values = value if isinstance(value, list | tuple) else [value]
        lines += [f"    {key.ljust(width)} {v}" for v in values]
    return "\n".join(lines) + "\n"


def fluent_bit_config(args: LogShippingArgs) -> dict[str, str]:
    """The chart's `config` values: inputs, filters, outputs (Fluent Bit's classic format)."""
    url = urlsplit(args.elasticsearch_url)
    if url.scheme != "https" or not url.hostname:
        raise ValueError("elasticsearch_url must be an https:// URL (credentials go over it)")
    namespace = args.service_namespace or namespace_for(args.stack)
    inputs = _section(
        "INPUT",
        Name="tail",
        Tag="kube.*",
        Path="/var/log/containers/*.log",
        **{"multiline.parser": "cri"},
        DB="/var/log/flb_kube.db",
        Mem_Buf_Limit="50MB",
        Skip_Long_Lines="On",
        Refresh_Interval="10",
    )
    filters = "\n".join(
        (
            _section(
                "FILTER",
                Name="kubernetes",
                Match="kube.*",
                Kube_Tag_Prefix="kube.var.log.containers.",
                Merge_Log="Off",
                Keep_Log="On",
                Labels="On",
                Annotations="Off",
            ),
            _section(
                "FILTER",
                Name="grep",
                Match="kube.*",
                Regex=f"$kubernetes['namespace_name'] ^{namespace}$",
            ),
            _section(
                "FILTER",
                Name="parser",
                Match="kube.*",
                Key_Name="log",
                Parser="json",
                Reserve_Data="On",
            ),
            _section(
                "FILTER",
                Name="record_modifier",
                Match="kube.*",
                Allowlist_Key=[*INDEXED_FIELDS, "kubernetes"],
            ),
        )
    )
    outputs = _section(
        "OUTPUT",
        Name="es",
        Match="kube.*",
        Host=url.hostname,
        Port=str(url.port or 443),
        Path=url.path.rstrip("/") or "/",
        Index=log_index(args.stack),
        Suppress_Type_Name="On",
        Time_Key="@timestamp",
        Replace_Dots="On",
        tls="On",
        **{"tls.verify": "On"},
        # the es output's own key (`http_api_key`): it sends `Authorization: ApiKey <value>`, the
        # value being Elasticsearch's base64 "encoded" API key; an unknown key (`Header`) makes
        # Fluent Bit refuse the config at start
        HTTP_API_Key=f"${{{API_KEY_ENV}}}",
        Retry_Limit="10",
    )
    return {"inputs": inputs, "filters": filters, "outputs": outputs}


def helm_values(args: LogShippingArgs) -> dict[str, Any]:
    return {
        "config": fluent_bit_config(args),
        "env": [
            {
                "name": API_KEY_ENV,
                "valueFrom": {
                    "secretKeyRef": {"name": args.credentials_secret, "key": API_KEY_SECRET_KEY}
                },
            }
        ],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "256Mi"},
        },
    }


def external_secret_spec(args: LogShippingArgs) -> dict[str, Any]:
    return {
        "refreshInterval": REFRESH_INTERVAL,
        "secretStoreRef": {"name": STORE, "kind": "SecretStore"},
        "target": {"name": args.credentials_secret, "creationPolicy": "Owner"},
        "data": [{"secretKey": API_KEY_SECRET_KEY, "remoteRef": {"key": args.store.entry}}],
    }


class LogShipping(pulumi.ComponentResource):
    """The logging namespace, the API key's ExternalSecret and the Fluent Bit Helm release."""

    release: k8s.helm.v3.Release
    external_secret: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, args: LogShippingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:platform:LogShipping", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-logging-namespace",
            metadata={"name": args.namespace},
            opts=pulumi.ResourceOptions(parent=self),
        )
        labels = {"app": APP_NAME, "stack": args.stack, "component": "logs"}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-elasticsearch-sa",
            metadata={
                "name": STORE_ACCOUNT,
                "namespace": namespace.metadata["name"],
                "labels": labels,
                "annotations": args.store.account_annotations,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        store = k8s.apiextensions.CustomResource(
            f"{name}-elasticsearch-store",
            api_version=EXTERNAL_SECRETS_API,
            kind="SecretStore",
            metadata={"name": STORE, "namespace": namespace.metadata["name"], "labels": labels},
            spec={"provider": args.store.provider},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, *args.crds]),
        )
        self.external_secret = k8s.apiextensions.CustomResource(
            f"{name}-elasticsearch-credentials",
            api_version=EXTERNAL_SECRETS_API,
            kind="ExternalSecret",
            metadata={
                "name": args.credentials_secret,
                "namespace": namespace.metadata["name"],
                "labels": labels,
                "annotations": {WAIT_FOR_ANNOTATION: WAIT_FOR_READY},
            },
            spec=external_secret_spec(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[store, *args.crds]),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-fluent-bit",
            name="fluent-bit",
            chart=CHART,
            version=args.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=namespace.metadata["name"],
            values=helm_values(args),
            atomic=True,
            # Fluent Bit's pods read the Secret: they start once the ExternalSecret has synced
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.external_secret]),
        )
        self.register_outputs({"index": log_index(args.stack), "release": self.release.name})
