"""Every setting of the flowchat stacks, typed, in one place.

`load_config()` reads the `flowchat:*` keys the way the Pulumi CLI feeds them (strings; objects as
JSON strings) and validates them with pydantic. Any bad value raises `ConfigError`, whose message
names each offending key, e.g. ``flowchat:api.replicas: must be >= 0 (got -1)``.

Defaults here are the same as in Pulumi.yaml's ``config:`` block (a test checks that they agree).
Runbook thresholds come from `stacks.alerts.Thresholds` (parsed here, bounded by the policy pack).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app.contracts import (
    APP_NAME,
    DEFAULT_WORKER_THREADS,
    MAX_WORKER_THREADS,
    key_vault_name,
    namespace_for,
)
from stacks.alerts import Thresholds
from stacks.escalation import PAGERDUTY_TOKEN_KEY, EscalationConfig
from stacks.images import CHROMA_IMAGE, REDIS_IMAGE

Cloud = Literal["azure", "aws"]
CLOUDS: tuple[str, ...] = ("azure", "aws")

_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_IMAGE_REPO = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """Invalid stack configuration; the message names every offending `flowchat:` key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  {p}" for p in problems))


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError("must be a Kubernetes quantity such as 500m, 256Mi or 10Gi")
    if float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
        raise ValueError("must be greater than zero")
    return value


def _pinned_image(value: str) -> str:
    """An image reference with an explicit tag that is not `latest` (e.g. redis:7.2.5)."""
    name, _, tag = value.rpartition(":")
    if "@sha256:" in value:
        return value
    if not name or "/" in tag or not _IMAGE_TAG.match(tag):
        raise ValueError("must carry an explicit tag, e.g. redis:7.2.5")
    if tag == "latest":
        raise ValueError("must not use the tag 'latest'; pin a version")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
Replicas = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ImageConfig(_Model):
    """The one flowchat image (API, worker and emulator)."""

    repository: str = "ghcr.io/flowchat/flowchat"
    tag: str = "0.1.0"

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        if "@" in value or not _IMAGE_REPO.match(value) or value.rsplit("/", 1)[-1].count(":"):
            raise ValueError(
                "must be a repository without tag or digest (put the tag in image.tag)"
            )
        return value

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str) -> str:
        if value == "latest":
            raise ValueError("must not be 'latest'; pin a version or a git sha")
        if not (_IMAGE_TAG.match(value) or _DIGEST.match(value)):
            raise ValueError(
                "must be a Docker tag (letters, digits, '.', '_', '-') or sha256 digest"
            )
        return value

    @property
    def ref(self) -> str:
        sep = "@" if self.tag.startswith("sha256:") else ":"
        return f"{self.repository}{sep}{self.tag}"


class Resources(_Model):
    """Requests and limits of one container."""

    cpu_request: Quantity = "100m"
    memory_request: Quantity = "256Mi"
    cpu_limit: Quantity = "1"
    memory_limit: Quantity = "1Gi"

    def manifest(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


class ApiConfig(_Model):
    replicas: Replicas = 2
    max_queue_depth: int = Field(100, ge=1)  # MAX_QUEUE_DEPTH: 429 above this
    resources: Resources = Resources(memory_request="512Mi", memory_limit="1536Mi")


SHUTDOWN_MARGIN_SECONDS = 30  # a chat worker's grace period beyond its longest job


class WorkerConfig(_Model):
    """Chat worker pods: one process each running ``threads_per_pod`` RQ work loops, i.e. that
    many chats in flight (app.worker.threads). KEDA scales them on two targets per replica:

    * ``queue_length_per_replica``: jobs no loop has taken yet (``rq:queue:flow_tasks``); any
      such job means every loop is busy. Default: half a pod's loops.
    * ``in_flight_per_replica``: jobs waiting or running (Prometheus ``rq_jobs`` queued +
      started), so that KEDA does not scale in while every loop is busy and the list is empty.
      Default: three quarters of a pod's loops, a pod is added before the others are full.

    A pod that is scaled in (or evicted) stops taking jobs and finishes the ones it runs: its
    grace period is the job timeout (``JOB_TIMEOUT_SECONDS``) plus
    ``SHUTDOWN_MARGIN_SECONDS``. Sizing (docs/performance.md): ~300 MB per 32-loop process,
    15-22 ms of worker CPU per chat.
    """

    # >= 1: readiness (/api/health/ready) is 503 without a worker, so with zero workers the
    # ingress sends no chat, nothing is queued and KEDA's queue-length trigger never wakes one.
    min_replicas: int = Field(1, ge=1)
    max_replicas: Replicas = 4
    threads_per_pod: int = Field(DEFAULT_WORKER_THREADS, ge=1, le=MAX_WORKER_THREADS)
    queue_length_per_replica: int | None = Field(None, ge=1)
    in_flight_per_replica: int | None = Field(None, ge=1)
    resources: Resources = Resources(
        cpu_request="250m", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> WorkerConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})"
            )
        for name, value in (
            ("queueLengthPerReplica", self.queue_length_per_replica),
            ("inFlightPerReplica", self.in_flight_per_replica),
        ):
            if value is not None and value > self.threads_per_pod:
                raise ValueError(
                    f"{name} ({value}) must be <= threadsPerPod ({self.threads_per_pod}): "
                    "a pod carries at most that many chats, more per replica would leave "
                    "chats waiting before KEDA adds a pod"
                )
        return self

    @property
    def queue_length_target(self) -> int:
        """Waiting chat jobs per replica (KEDA's redis trigger)."""
        return self.queue_length_per_replica or max(1, self.threads_per_pod // 2)

    @property
    def in_flight_target(self) -> int:
        """Waiting + running chat jobs per replica (KEDA's prometheus trigger)."""
        return self.in_flight_per_replica or max(1, self.threads_per_pod * 3 // 4)


class IngestWorkerConfig(_Model):
    """Ingestion workers (`python -m app.ingest.worker --workers N` on the ingest queue)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    workers_per_pod: int = Field(1, ge=1)  # --workers
    # one replica per this many ingest jobs, waiting or running
    jobs_per_replica: int = Field(2, ge=1)
    # long enough for an OCR job to finish after SIGTERM (the worker drains, then exits)
    termination_grace_seconds: int = Field(1800, ge=30)
    resources: Resources = Resources(memory_request="1Gi", memory_limit="3Gi")

    @model_validator(mode="after")
    def _check_bounds(self) -> IngestWorkerConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})"
            )
        return self


class RedisConfig(_Model):
    image: PinnedImage = REDIS_IMAGE
    volume_size: Quantity = "2Gi"
    resources: Resources = Resources(memory_request="128Mi", memory_limit="512Mi", cpu_limit="500m")


class ChromaConfig(_Model):
    image: PinnedImage = CHROMA_IMAGE
    volume_size: Quantity = "10Gi"
    resources: Resources = Resources(memory_request="512Mi", memory_limit="2Gi")


class DocumentsConfig(_Model):
    """The shared ReadWriteMany volume holding uploaded files (DOCUMENTS_PATH)."""

    volume_size: Quantity = "5Gi"
    storage_class: str | None = None  # must offer ReadWriteMany (azurefile-csi, efs-sc, ...)


class TokenPrices(_Model):
    """`flowchat:tokenPrices`: what Flow charges per 1000 tokens (USD), for the dashboard's cost
    estimate only. Defaults: the list prices of the default model gpt-4o-mini (0.15 and 0.60
    USD per million prompt / completion tokens); set the stack's contract prices."""

    prompt: Annotated[float, Field(ge=0)] = 0.00015
    completion: Annotated[float, Field(ge=0)] = 0.0006


class FlowConfig(_Model):
    base_url: str = "https://flow.ciandt.com"
    app_to_access: str = "llm-api"
    model: str = "gpt-4o-mini"

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class AzureConfig(_Model):
    resource_group: str | None = None
    location: str = "westeurope"
    tenant_id: str | None = None
    # None: the azure-native provider reads ARM_SUBSCRIPTION_ID (the deploy job's env)
    subscription_id: str | None = None
    vault_name: str | None = None  # default: app.contracts.key_vault_name(stack)
    create_vault: bool = True  # false: use an existing vault called vault_name
    # Existing identity for External Secrets (teams that manage IAM elsewhere): its client id.
    # None: the program creates a user-assigned identity + federated credential + role assignment.
    workload_identity_client_id: str | None = None
    # The AKS cluster's OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl); needed
    # for the federated credential the program creates.
    oidc_issuer_url: str | None = None
    # Principal (object id) of the rotation identity (ops.rotate_credentials in CI): gets
    # "Key Vault Secrets Officer" on the vault. None: no writer grant (rotation cannot write).
    rotation_principal_id: str | None = None


class AwsConfig(_Model):
    region: str = "eu-west-1"
    # Existing IRSA role External Secrets assumes (teams that manage IAM elsewhere). None: the
    # program creates the role from the EKS OIDC provider below.
    role_arn: str | None = None
    # The EKS cluster's IAM OIDC provider (ARN) and its issuer without https://
    # (aws eks describe-cluster --query cluster.identity.oidc.issuer).
    oidc_provider_arn: str | None = None
    oidc_issuer: str | None = None


class GrafanaConfig(_Model):
    """The Grafana instance alerts and the dashboard go to (explicit provider config).

    `auth` (a service-account token, or user:password) is secret config `flowchat:grafanaAuth`,
    delivered by the stack's ESC environment; never committed.
    """

    url: str | None = None
    org_id: int | None = Field(None, ge=1)
    auth: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class AddonsConfig(_Model):
    """Cluster add-ons the stack relies on; defaults match kube-prometheus-stack and KEDA's chart.

    AKS's KEDA add-on runs in kube-system; a managed Grafana generates its own datasource uid.
    """

    keda_namespace: str = "keda"
    ingress_namespace: str = "ingress-nginx"  # where the ingress controller's pods run
    # where Prometheus and the blackbox exporter run (they scrape / probe the API Service)
    monitoring_namespace: str = "monitoring"
    prober_url: str = "blackbox-exporter.monitoring.svc:9115"
    # Prometheus KEDA asks for the ingest queue's waiting + running jobs (kube-prometheus-stack)
    prometheus_url: str = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    prometheus_datasource_uid: str = "prometheus"
    # labels kube-prometheus-stack's Prometheus selects ServiceMonitors / Probes by
    monitor_labels: dict[str, str] = {"release": "kube-prometheus-stack"}


class AlertingConfig(_Model):
    """Where alerts go: one Grafana contact point per stack.

    `url` is the Slack webhook (type slack), `integration_key` the PagerDuty routing key (type
    pagerduty); both are SecretStr and must be wrapped with `pulumi.Output.secret` by consumers.
    `addresses` are e-mail recipients (required for type email, optional extra for the others).
    """

    contact_point: str = ""  # default: flowchat-<stack>
    type: Literal["email", "slack", "pagerduty"] = "email"
    addresses: list[str] = []
    url: SecretStr | None = None
    integration_key: SecretStr | None = None

    @field_validator("addresses")
    @classmethod
    def _check_addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not _EMAIL.match(a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _check_receiver(self) -> AlertingConfig:
        if self.type == "email" and not self.addresses:
            raise ValueError("type email needs at least one entry in addresses")
        if self.type == "slack" and self.url is None:
            raise ValueError("type slack needs url (a secret: flowchat:alertingUrl)")
        if self.type == "pagerduty" and self.integration_key is None:
            raise ValueError("type pagerduty needs integrationKey (a secret: flowchat:alertingUrl)")
        return self


# Settings the stack derives itself (service URLs, secrets, the queue): never in `env`.
STACK_OWNED_ENV = frozenset(
    {
        "REDIS_URL",
        "CHROMA_URL",
        "RQ_QUEUE",
        "FLOW_BASE_URL",
        "FLOW_APP_TO_ACCESS",
        "FLOW_MODEL",
        "DOCUMENTS_PATH",
        "MAX_QUEUE_DEPTH",
        "API_KEYS",
        "API_KEYS_FILE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",  # flowchat:otlpEndpoint (it also opens the egress)
        "WORKER_THREADS",  # flowchat:worker.threadsPerPod (KEDA's targets derive from it)
    }
)
FORBIDDEN_ENV = {
    "ALLOW_ANONYMOUS_CHAT": "never set in a stack: a deployed API refuses chat without a key",
}


def validate_app_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` entries are app.core.settings.Settings fields with values Settings accepts."""
    from app.core.settings import Settings  # the service's own settings model

    problems = []
    for name in env:
        if name in FORBIDDEN_ENV:
            problems.append(f"{name} is {FORBIDDEN_ENV[name]}")
        elif name in STACK_OWNED_ENV:
            problems.append(f"{name} is set by the stack itself")
        elif name not in Settings.model_fields:
            problems.append(f"{name} is not an app setting (app.core.settings.Settings)")
        elif "SecretStr" in str(Settings.model_fields[name].annotation):
            problems.append(f"{name} is a secret: it comes from the secret manager")
    if problems:
        raise ValueError("; ".join(problems))
    try:
        Settings.model_validate(dict(env))
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    return dict(env)


class StackConfig(_Model):
    """All `flowchat:*` settings of one stack."""

    stack: str
    cloud: Cloud = "azure"
    namespace: str = ""  # default: app.contracts.namespace_for(stack)
    image: ImageConfig = ImageConfig()
    api: ApiConfig = ApiConfig()
    worker: WorkerConfig = WorkerConfig()
    ingest_worker: IngestWorkerConfig = IngestWorkerConfig()
    redis: RedisConfig = RedisConfig()
    chroma: ChromaConfig = ChromaConfig()
    documents: DocumentsConfig = DocumentsConfig()
    storage_class: str | None = None  # ReadWriteOnce class for Redis and Chroma (None: default)
    hostname: str
    ingress_class: str = "nginx"
    tls_issuer: str | None = None  # cert-manager ClusterIssuer; None: no TLS block
    # None (normal): the Kubernetes provider reads KUBECONFIG, which the deploy job's cluster
    # credentials step sets before `pulumi up`. A secret kubeconfig here overrides that.
    kubeconfig: SecretStr | None = None
    grafana: GrafanaConfig = GrafanaConfig()
    addons: AddonsConfig = AddonsConfig()
    azure: AzureConfig = AzureConfig()
    aws: AwsConfig = AwsConfig()
    flow: FlowConfig = FlowConfig()
    thresholds: Thresholds = Field(default_factory=Thresholds)
    alerting: AlertingConfig  # required: every stack says where its alerts go
    # PagerDuty tiers for critical alerts (stacks.escalation); None: every alert to `alerting`
    escalation: EscalationConfig | None = None
    token_prices: TokenPrices = TokenPrices()  # per 1000 tokens, for the dashboard's cost panel
    # OpenTelemetry collector (OTLP/HTTP, e.g. http://otel-collector.monitoring.svc:4318): set
    # as OTEL_EXPORTER_OTLP_ENDPOINT on the API and worker pods, with NetworkPolicy egress to
    # its port; None: nothing is exported and no egress is opened
    otlp_endpoint: str | None = None
    # Pod-template annotation value; ops.rotate_credentials bumps it (see stacks/service.py).
    credentials_version: str = "0"
    # Extra app settings for the API and worker containers (app.core.settings.Settings names, e.g.
    # CHUNK_SIZE), validated against Settings; names the stack sets itself are refused.
    env: dict[str, str] = {}

    @field_validator("env", mode="before")
    @classmethod
    def _stringify_env(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                str(k): (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in value.items()
            }
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_app_env(value)

    def app_settings(self) -> Any:
        """The app's settings as the stack's pods get them (defaults + ``env``), e.g. the job
        timeout a chat worker's grace period covers."""
        from app.core.settings import Settings

        return Settings.model_validate(self.env)

    @property
    def worker_grace_seconds(self) -> int:
        """Chat worker pods: their longest job, then the margin (SIGTERM is a warm shutdown)."""
        return int(self.app_settings().JOB_TIMEOUT_SECONDS) + SHUTDOWN_MARGIN_SECONDS

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[A-Za-z0-9.-]+:[0-9]{1,5}/?$", value):
            raise ValueError(
                "must be a collector URL with its port (the NetworkPolicy opens egress to it), "
                "such as http://otel-collector.monitoring.svc:4318"
            )
        return value.rstrip("/")

    @property
    def otlp_port(self) -> int | None:
        """The collector's port (OTLP/HTTP's is 4318), to which pods get egress."""
        if self.otlp_endpoint is None:
            return None
        return int(self.otlp_endpoint.rsplit(":", 1)[1])

    @field_validator("hostname")
    @classmethod
    def _check_hostname(cls, value: str) -> str:
        if not _DNS_NAME.match(value):
            raise ValueError("must be a lower-case DNS name such as chat.example.com")
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if value and not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", value):
            raise ValueError("must be a Kubernetes namespace name (lower case, digits, '-')")
        return value

    @model_validator(mode="after")
    def _fill_stack_defaults(self) -> StackConfig:
        # frozen model: defaults that depend on the stack name are set once, here.
        if not self.namespace:
            object.__setattr__(self, "namespace", namespace_for(self.stack))
        if not self.azure.vault_name:
            object.__setattr__(
                self,
                "azure",
                self.azure.model_copy(update={"vault_name": key_vault_name(self.stack)}),
            )
        if not self.alerting.contact_point:
            contact = f"{APP_NAME}-{self.stack}"
            object.__setattr__(
                self, "alerting", self.alerting.model_copy(update={"contact_point": contact})
            )
        return self

    @property
    def vault_name(self) -> str:
        return self.azure.vault_name or key_vault_name(self.stack)


# Top-level keys whose value is a JSON object (the CLI hands structured config over as JSON).
OBJECT_KEYS = frozenset(
    {"image", "api", "worker", "redis", "chroma", "documents", "azure", "aws", "flow"}
    | {"thresholds", "alerting", "grafana", "addons", "ingestWorker", "env", "tokenPrices"}
    | {"escalation"}
)
# Secret keys that are not part of an object: merged into one before validation.
ALERTING_SECRET_KEY = "alertingUrl"  # Slack webhook or PagerDuty key, always secret config
GRAFANA_AUTH_KEY = "grafanaAuth"  # Grafana service-account token, always secret config
# Keys that are secret config, delivered by the stack's ESC environment (never committed).
SECRET_CONFIG_KEYS = (ALERTING_SECRET_KEY, GRAFANA_AUTH_KEY, "kubeconfig", PAGERDUTY_TOKEN_KEY)


def _top_level_keys() -> list[str]:
    return [
        field.alias or name for name, field in StackConfig.model_fields.items() if name != "stack"
    ]


def _describe(err: Mapping[str, Any], secret: bool) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        text = "must be a whole number"
    elif kind in {"float_parsing", "float_type"}:
        text = "must be a number"
    elif kind in {"bool_parsing", "bool_type"}:
        text = "must be true or false"
    elif kind == "greater_than_equal":
        text = f"must be >= {ctx.get('ge')}"
    elif kind == "greater_than":
        text = f"must be > {ctx.get('gt')}"
    elif kind == "less_than_equal":
        text = f"must be <= {ctx.get('le')}"
    elif kind == "less_than":
        text = f"must be < {ctx.get('lt')}"
    elif kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind == "string_pattern_mismatch":
        text = f"must match {ctx.get('pattern')}"
    elif kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
    elif kind in {"model_type", "dict_type", "model_attributes_type"}:
        text = "must be an object"
    elif kind == "list_type":
        text = "must be a list"
    else:
        text = str(err["msg"])
    if secret:  # never echo a secret value, even when a nested validator quoted it
        return re.sub(r"\s*\(got .*\)$", "", text)
    if "input" not in err or isinstance(err["input"], dict | list) or "(got " in text:
        return text
    return f"{text} (got {err['input']!r})"


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse_config(
    stack: str, raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset()
) -> StackConfig:
    """Validate raw `flowchat:*` values (key without namespace -> string as the CLI gives it).

    `secret_keys` holds the (unqualified) keys that were secret config; their values are never
    echoed in error messages.
    """
    problems: list[str] = []
    data: dict[str, Any] = {"stack": stack}
    known = set(_top_level_keys())
    for key, value in raw.items():
        if key in (ALERTING_SECRET_KEY, GRAFANA_AUTH_KEY, PAGERDUTY_TOKEN_KEY):
            continue
        if key not in known:
            problems.append(f"flowchat:{key}: is not a known setting")
            continue
        if key in OBJECT_KEYS:
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                problems.append(f"flowchat:{key}: must be an object (YAML mapping / JSON object)")
                continue
            if not isinstance(parsed, dict):
                problems.append(f"flowchat:{key}: must be an object (YAML mapping / JSON object)")
                continue
            data[key] = parsed
        else:
            data[key] = value
    if ALERTING_SECRET_KEY in raw:
        alerting = dict(data.get("alerting") or {})
        kind = alerting.get("type", "email")
        alerting["integrationKey" if kind == "pagerduty" else "url"] = raw[ALERTING_SECRET_KEY]
        data["alerting"] = alerting
    if PAGERDUTY_TOKEN_KEY in raw and isinstance(data.get("escalation"), dict):
        data["escalation"] = {**data["escalation"], "token": raw[PAGERDUTY_TOKEN_KEY]}
    if GRAFANA_AUTH_KEY in raw:
        data["grafana"] = {**(data.get("grafana") or {}), "auth": raw[GRAFANA_AUTH_KEY]}
    if problems:
        raise ConfigError(problems)
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            secret = bool(loc) and (str(loc[0]) in secret_keys or loc[0] == "kubeconfig")
            secret = secret or any(
                part in {"url", "integrationKey", "auth", "token"} for part in loc
            )
            problems.append(f"flowchat:{_key_path(loc) or 'config'}: {_describe(err, secret)}")
        raise ConfigError(problems) from None
    problems.extend(_cloud_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


def _cloud_problems(config: StackConfig) -> list[str]:
    problems = []
    if config.cloud == "azure":
        required = ["resource_group", "tenant_id"]
        if not config.azure.workload_identity_client_id:
            required.append("oidc_issuer_url")  # for the federated credential the stack creates
        for field in required:
            if not getattr(config.azure, field):
                problems.append(
                    f"flowchat:azure.{to_camel(field)}: is required when cloud is azure"
                    + ("" if field != "oidc_issuer_url" else " (or azure.workloadIdentityClientId)")
                )
    if config.cloud == "aws" and not config.aws.role_arn:
        for field in ("oidc_provider_arn", "oidc_issuer"):
            if not getattr(config.aws, field):
                problems.append(
                    f"flowchat:aws.{to_camel(field)}: is required when cloud is aws "
                    "(or aws.roleArn, an existing IRSA role)"
                )
    return problems


def offline_secret_keys(raw: Mapping[str, str]) -> list[str]:
    """Secret keys a stack needs that its ESC environment delivers (never committed).

    Only the offline preview (stacks.render) supplies placeholders for them; the first-run test
    reads the ESC definition instead. Today: `grafanaAuth` always, `alertingUrl` when the
    contact point is Slack or PagerDuty.
    """
    keys = [GRAFANA_AUTH_KEY]
    try:
        alerting = json.loads(raw.get("alerting", "{}"))
    except json.JSONDecodeError:
        return keys
    if isinstance(alerting, dict) and alerting.get("type") in {"slack", "pagerduty"}:
        keys.insert(0, ALERTING_SECRET_KEY)
    if "escalation" in raw:
        keys.append(PAGERDUTY_TOKEN_KEY)
    return keys


def load_config(project: str = APP_NAME) -> StackConfig:
    """Read and validate the `flowchat:*` config of the running stack through `pulumi.Config`.

    Every known key (and the secret keys of SECRET_CONFIG_KEYS) is read with the public API;
    keys the CLI marks secret are never echoed in error messages.
    """
    cfg = pulumi.Config(project)
    raw: dict[str, str] = {}
    secret: set[str] = set()
    for key in dict.fromkeys((*_top_level_keys(), *SECRET_CONFIG_KEYS)):
        value = cfg.get(key)
        if value is None:
            continue
        raw[key] = value
        if key in SECRET_CONFIG_KEYS or pulumi.runtime.is_config_secret(f"{project}:{key}"):
            secret.add(key)
    return parse_config(pulumi.get_stack(), raw, frozenset(secret))
