"""`flowchat-platform:*` config of one platform stack, typed.

`mode: managed` creates the cluster; `mode: external` creates nothing and exports `external` (the
same values a team with its own cluster passes to the service stack directly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from stacks.config_types import DNS_NAME, ConfigModel
from stacks.platform_ref import PLACEHOLDER_DOMAINS, PlatformOutputs

PROJECT = "flowchat-platform"
PROJECT_DIR = Path(__file__).resolve().parent


class AzureCluster(ConfigModel):
    resource_group: str
    location: str = "westeurope"
    node_count: int = Field(2, ge=1)
    vm_size: str = "Standard_D4s_v5"
    kubernetes_version: str = "1.33"


class AwsCluster(ConfigModel):
    region: str = "eu-west-1"
    node_count: int = Field(3, ge=1)
    instance_type: str = "m6i.large"
    kubernetes_version: str = "1.33"
    vpc_cidr: str = "10.40.0.0/16"
    availability_zones: list[str] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


class LogsSettings(ConfigModel):
    """`flowchat-platform:logs`: where Fluent Bit ships the pods' JSON lines (log_shipping).

    The API key comes from the cloud's secret manager (log_shipping's ExternalSecret), read as
    an existing identity: `roleArn` (EKS, IRSA) or `clientId` + `tenantId` (AKS, workload
    identity), granted read on `apiKeyEntry` only.
    """

    elasticsearch_url: str  # the team's Elasticsearch (https)
    credentials_secret: str = "elasticsearch-credentials"  # Secret the ExternalSecret writes
    # the secret-manager entry with Elasticsearch's base64 "encoded" API key; default:
    # log_shipping.default_api_key_entry (flowchat/<stack>/ELASTICSEARCH_API_KEY on AWS,
    # elasticsearch-api-key in the stack's Key Vault on Azure)
    api_key_entry: str = ""
    role_arn: str = ""  # aws: IRSA role External Secrets assumes for this entry
    client_id: str = ""  # azure: workload identity client id
    tenant_id: str = ""  # azure: its tenant
    vault_name: str = ""  # azure: default app.contracts.key_vault_name(stack)


class PlatformSettings(ConfigModel):
    stack: str
    cloud: Literal["azure", "aws"]
    mode: Literal["managed", "external"] = "managed"
    cluster_name: str = ""
    dns_zone: str = ""  # the zone the platform creates (delegate it from its parent once)
    host_label: str = "chat"  # the service's hostname is <hostLabel>.<dnsZone>
    acme_email: str = ""  # Let's Encrypt account (expiry notices)
    # the service stacks' namespaces: the platform creates them (cluster-scoped), the deploy
    # identity may write in them (bootstrap), each service stack deploys into its own
    service_namespaces: list[str] = Field(default_factory=list)
    azure: AzureCluster | None = None
    aws: AwsCluster | None = None
    external: PlatformOutputs | None = None
    logs: LogsSettings | None = None  # None: no log shipping (the team ships logs its own way)

    @model_validator(mode="after")
    def _check(self) -> PlatformSettings:
        if self.mode == "external":
            if self.external is None:
                raise ValueError("mode external needs external (the cluster's values)")
            return self
        if not self.service_namespaces:
            raise ValueError("mode managed needs serviceNamespaces (the stacks' namespaces)")
        if not self.cluster_name or not self.acme_email:
            raise ValueError("mode managed needs clusterName and acmeEmail")
        if not DNS_NAME.match(self.dns_zone) or self.dns_zone.endswith(PLACEHOLDER_DOMAINS):
            raise ValueError("dnsZone must be a real DNS zone (not example.com)")
        if getattr(self, self.cloud) is None:
            raise ValueError(f"mode managed on {self.cloud} needs the {self.cloud} block")
        if self.logs is not None:
            needed = ("roleArn",) if self.cloud == "aws" else ("clientId", "tenantId")
            missing = [k for k in needed if not getattr(self.logs, _snake(k))]
            if missing:
                raise ValueError(
                    f"logs on {self.cloud} needs {', '.join(missing)} (the identity that reads "
                    "the Elasticsearch API key from the secret manager)"
                )
        return self

    @property
    def hostname(self) -> str:
        return f"{self.host_label}.{self.dns_zone}"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def parse_settings(stack: str, raw: Mapping[str, str]) -> PlatformSettings:
    """Values as the CLI hands them over (strings; objects as JSON)."""
    data: dict[str, object] = {"stack": stack}
    for key, value in raw.items():
        try:
            data[key] = json.loads(value) if value[:1] in "[{" else value
        except json.JSONDecodeError:
            data[key] = value
    return PlatformSettings.model_validate(data)


def stack_file_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """`flowchat-platform:*` of Pulumi.<stack>.yaml, as the CLI would hand them over."""
    doc = yaml.safe_load((project_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    out = {}
    for key, value in (doc.get("config") or {}).items():
        if key.startswith(f"{PROJECT}:"):
            name = key.split(":", 1)[1]
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def load_settings() -> PlatformSettings:
    import pulumi

    cfg = pulumi.Config(PROJECT)
    raw = {}
    for name, field in PlatformSettings.model_fields.items():
        if name == "stack":
            continue
        value = cfg.get(field.alias or name)
        if value is not None:
            raw[field.alias or name] = value
    return parse_settings(pulumi.get_stack(), raw)
