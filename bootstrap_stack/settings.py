"""`flowchat-bootstrap:*` config, typed."""

from __future__ import annotations

import json

import pulumi
from pydantic import Field

from stacks.config_types import ConfigModel

PROJECT = "flowchat-bootstrap"


class AzureBootstrap(ConfigModel):
    location: str = "westeurope"
    resource_group: str
    cluster_name: str
    deploy_vault: str  # holds the ESC-delivered secret config (Grafana token, webhook, registry)


class AwsBootstrap(ConfigModel):
    region: str = "eu-west-1"
    cluster_name: str


class BootstrapSettings(ConfigModel):
    organization: str
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    image_repository: str
    production_reviewers: list[int] = []
    azure: AzureBootstrap
    aws: AwsBootstrap


def load_settings() -> BootstrapSettings:
    cfg = pulumi.Config(PROJECT)
    data: dict[str, object] = {}
    for name, field in BootstrapSettings.model_fields.items():
        key = field.alias or name
        value = cfg.get(key)
        if value is not None:
            data[key] = json.loads(value) if value[:1] in "[{" else value
    return BootstrapSettings.model_validate(data)
