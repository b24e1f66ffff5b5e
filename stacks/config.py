"""Every setting of the flowchat stacks, typed, in one place.

`load_config()` reads the `flowchat:*` keys the way the Pulumi CLI feeds them (strings; objects as
JSON strings) and validates them with pydantic. Any bad value raises `ConfigError`, whose message
names each offending key, e.g. ``flowchat:api.replicas: must be >= 0 (got -1)``.

The objects are defined by concern: `stacks.config_types` (base model, image, resources),
`stacks.config_workloads` (API, workers, Redis, Chroma, documents, Flow, app env) and
`stacks.config_cluster` (cloud, add-ons, Grafana, alerting); this module assembles `StackConfig`
and parses the CLI's values. Every name stays importable from here.

Defaults here are the same as in Pulumi.yaml's ``config:`` block (a test checks that they agree).
Runbook thresholds come from `stacks.alerts.Thresholds` (parsed here, bounded by the policy pack).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from app.contracts import APP_NAME, key_vault_name, namespace_for
from stacks.alerts import Thresholds
from stacks.config_cluster import (
    AddonsConfig,
    AlertingConfig,
    AwsConfig,
    AzureConfig,
    GrafanaConfig,
)
from stacks.config_types import (
    CLOUDS,
    Cloud,
    ConfigError,
    ConfigModel,
    ImageConfig,
    PinnedImage,
    Quantity,
    Replicas,
    Resources,
)
from stacks.config_workloads import (
    FORBIDDEN_ENV,
    SHUTDOWN_MARGIN_SECONDS,
    STACK_OWNED_ENV,
    ApiConfig,
    ChromaConfig,
    DocumentsConfig,
    FlowConfig,
    IngestWorkerConfig,
    RedisConfig,
    TokenPrices,
    WorkerConfig,
    validate_app_env,
)
from stacks.escalation import PAGERDUTY_TOKEN_KEY, EscalationConfig
from stacks.platform_ref import PlatformConfig


class StackConfig(ConfigModel):
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
    # where the cluster's values come from (storage and ingress classes, ClusterIssuer, hostname,
    # ...): the platform stack's outputs, or the same values for a cluster the team runs itself
    platform: PlatformConfig
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
    | {"platform", "escalation"}
)
# Secret keys that are not part of an object: merged into one before validation.
ALERTING_SECRET_KEY = "alertingUrl"  # Slack webhook or PagerDuty key, always secret config
ALERTING_CHAT_SECRET_KEY = "alertingChatUrl"  # Slack webhook of alerting.chat (warnings)
GRAFANA_AUTH_KEY = "grafanaAuth"  # Grafana service-account token, always secret config
REGISTRY_AUTH_KEY = "registryAuth"  # `user:token` the cluster pulls the image with
# Keys that are secret config, delivered by the stack's ESC environment (never committed).
SECRET_CONFIG_KEYS = (
    ALERTING_SECRET_KEY,
    ALERTING_CHAT_SECRET_KEY,
    GRAFANA_AUTH_KEY,
    REGISTRY_AUTH_KEY,
    "kubeconfig",
    PAGERDUTY_TOKEN_KEY,
)
# Secret keys merged into their objects below (kubeconfig is a setting of its own).
MERGED_SECRET_KEYS = frozenset(SECRET_CONFIG_KEYS) - {"kubeconfig"}
# Ids the bootstrap program creates, delivered by the stack's ESC environment: the committed
# deploy/esc/flowchat-<stack>.yaml imports `flowchat/<stack>-ids` (written by bootstrap) and maps
# its `ids.*` to these keys in `pulumiConfig`. Own top-level keys, because a `flowchat:azure` from
# ESC would be shadowed by the stack file's `flowchat:azure` object (stack config wins). Each key
# fills one field of an object unless the stack file sets that field itself.
ESC_ID_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "azure": {
        "azureTenantId": ("azure", "tenantId"),
        "azureRotationPrincipalId": ("azure", "rotationPrincipalId"),
    },
    "aws": {},
}
ESC_ID_PLACEHOLDER = "[ESC id]"  # what the offline preview shows for an id ESC delivers


def esc_id_keys(cloud: str) -> dict[str, tuple[str, str]]:
    """The id keys a stack on `cloud` reads from its ESC environment (key -> object, field)."""
    return ESC_ID_KEYS.get(cloud, {})


def _all_esc_id_keys() -> dict[str, tuple[str, str]]:
    return {k: v for keys in ESC_ID_KEYS.values() for k, v in keys.items()}


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
        if key in MERGED_SECRET_KEYS:
            continue
        if key in _all_esc_id_keys():
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
    chat = (data.get("alerting") or {}).get("chat")
    if ALERTING_CHAT_SECRET_KEY in raw and isinstance(chat, dict):
        data["alerting"]["chat"] = {**chat, "url": raw[ALERTING_CHAT_SECRET_KEY]}
    if GRAFANA_AUTH_KEY in raw:
        data["grafana"] = {**(data.get("grafana") or {}), "auth": raw[GRAFANA_AUTH_KEY]}
    if PAGERDUTY_TOKEN_KEY in raw and isinstance(data.get("escalation"), dict):
        data["escalation"] = {**data["escalation"], "token": raw[PAGERDUTY_TOKEN_KEY]}
    if REGISTRY_AUTH_KEY in raw:
        data["image"] = {**(data.get("image") or {}), "pullAuth": raw[REGISTRY_AUTH_KEY]}
    for key, (obj, field) in _all_esc_id_keys().items():
        if raw.get(key) and isinstance(data.get(obj, {}), dict):
            data[obj] = {field: raw[key], **(data.get(obj) or {})}  # the stack file's value wins
    if problems:
        raise ConfigError(problems)
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            secret = bool(loc) and (str(loc[0]) in secret_keys or loc[0] == "kubeconfig")
            secret = secret or any(
                part in {"url", "integrationKey", "auth", "pullAuth", "token"} for part in loc
            )
            problems.append(f"flowchat:{_key_path(loc) or 'config'}: {_describe(err, secret)}")
        raise ConfigError(problems) from None
    problems.extend(_cloud_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


def _cloud_problems(config: StackConfig) -> list[str]:
    """Cloud settings the stack cannot do without. The OIDC issuer (and EKS's IAM OIDC provider)
    come from the platform; `azure.oidcIssuerUrl` / `aws.oidcIssuer` only override them."""
    problems = []
    if config.cloud == "azure":
        for field in ("resource_group", "tenant_id"):
            if not getattr(config.azure, field):
                problems.append(
                    f"flowchat:azure.{to_camel(field)}: is required when cloud is azure"
                )
    external = config.platform.external
    if (
        config.cloud == "aws"
        and not config.aws.role_arn
        and not config.aws.oidc_provider_arn
        and external is not None
        and not external.oidc_provider_arn
    ):
        problems.append(
            "flowchat:platform.external.oidcProviderArn: is required when cloud is aws "
            "(or aws.roleArn, an existing IRSA role)"
        )
    return problems


def offline_secret_keys(raw: Mapping[str, str]) -> list[str]:
    """Secret keys a stack needs that its ESC environment delivers (never committed).

    Only the offline preview (stacks.render) supplies placeholders for them; the first-run test
    reads the ESC definition instead. Today: `grafanaAuth` and `registryAuth` always,
    `alertingUrl` when the contact point is Slack or PagerDuty, `alertingChatUrl` with
    `alerting.chat`, `pagerdutyToken` with `escalation`.
    """
    keys = [GRAFANA_AUTH_KEY, REGISTRY_AUTH_KEY]
    try:
        alerting = json.loads(raw.get("alerting", "{}"))
    except json.JSONDecodeError:
        return keys
    if isinstance(alerting, dict) and alerting.get("type") in {"slack", "pagerduty"}:
        keys.insert(0, ALERTING_SECRET_KEY)
    if isinstance(alerting, dict) and alerting.get("chat"):
        keys.insert(1, ALERTING_CHAT_SECRET_KEY)
    if "escalation" in raw:
        keys.append(PAGERDUTY_TOKEN_KEY)
    return keys


def offline_id_keys(raw: Mapping[str, str]) -> list[str]:
    """Id keys the stack's ESC environment delivers (ESC_ID_KEYS of its cloud); the offline
    preview supplies ESC_ID_PLACEHOLDER for them, the first-run test resolves them from what the
    bootstrap program writes into `flowchat/<stack>-ids`."""
    return list(esc_id_keys(raw.get("cloud", "azure")))


def load_config(project: str = APP_NAME) -> StackConfig:
    """Read and validate the `flowchat:*` config of the running stack through `pulumi.Config`.

    Every known key (and the secret keys of SECRET_CONFIG_KEYS) is read with the public API;
    keys the CLI marks secret are never echoed in error messages.
    """
    cfg = pulumi.Config(project)
    raw: dict[str, str] = {}
    secret: set[str] = set()
    for key in dict.fromkeys((*_top_level_keys(), *SECRET_CONFIG_KEYS, *_all_esc_id_keys())):
        value = cfg.get(key)
        if value is None:
            continue
        raw[key] = value
        if key in SECRET_CONFIG_KEYS or pulumi.runtime.is_config_secret(f"{project}:{key}"):
            secret.add(key)
    return parse_config(pulumi.get_stack(), raw, frozenset(secret))


__all__ = [
    "CLOUDS",
    "ESC_ID_KEYS",
    "FORBIDDEN_ENV",
    "SHUTDOWN_MARGIN_SECONDS",
    "STACK_OWNED_ENV",
    "AddonsConfig",
    "AlertingConfig",
    "ApiConfig",
    "AwsConfig",
    "AzureConfig",
    "ChromaConfig",
    "Cloud",
    "ConfigError",
    "DocumentsConfig",
    "FlowConfig",
    "GrafanaConfig",
    "ImageConfig",
    "IngestWorkerConfig",
    "PinnedImage",
    "Quantity",
    "RedisConfig",
    "Replicas",
    "Resources",
    "StackConfig",
    "TokenPrices",
    "WorkerConfig",
    "esc_id_keys",
    "load_config",
    "offline_id_keys",
    "offline_secret_keys",
    "parse_config",
    "validate_app_env",
]
