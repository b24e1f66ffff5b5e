"""`flowchat-bootstrap:*` config, typed."""

from __future__ import annotations

import json

import pulumi
from pydantic import Field

from stacks import esc
from stacks.config_types import ConfigModel

PROJECT = "flowchat-bootstrap"
# the service stack each ESC environment serves, and its cloud (Pulumi.<stack>.yaml flowchat:cloud)
ENVIRONMENT_CLOUDS = {"staging": "azure", "prod": "aws"}


class AzureBootstrap(ConfigModel):
    location: str = "westeurope"
    resource_group: str  # bootstrap's own group (identities, deploy vault), not the platform's
    cluster_name: str
    deploy_vault: str  # holds the ESC-delivered secret config (Grafana token, webhook, registry)


class AwsBootstrap(ConfigModel):
    region: str = "eu-west-1"
    cluster_name: str


class BootstrapSettings(ConfigModel):
    organization: str
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    image_repository: str
    # GitHub team ids whose one approval `production` requires (deploy.yml up-prod); set by the
    # operator, never committed empty: without a reviewer the prod approval does not exist
    production_reviewers: list[int] = Field(min_length=1)
    azure: AzureBootstrap
    aws: AwsBootstrap


SMOKE_API_KEY = "smokeApiKey"  # the key ops.smoke uses (a GitHub environment secret)
LOAD_TEST_API_KEY = "loadTestApiKey"  # the key load-test.yml uses (LOAD_TEST_API_KEY)


def deploy_secret_key(environment: str, key: str) -> str:
    """Secret config of the value ESC reads as `key` for `environment`: `stagingGrafanaAuth`."""
    return f"{environment}{key[:1].upper()}{key[1:]}"


def deploy_secrets(environment: str, cloud: str) -> dict[str, tuple[str, str]]:
    """What the committed ESC definition of `environment` reads from the secret manager:
    its `get:` key -> (the secret's name there, this stack's secret config key)."""
    return {
        key: (name, deploy_secret_key(environment, key))
        for key, name in esc.deploy_secret_names(environment, cloud).items()
    }


def secret_config_keys(clouds: dict[str, str]) -> list[str]:
    """Every secret config key the bootstrap stack requires (`pulumi config set --secret`)."""
    keys = [SMOKE_API_KEY, LOAD_TEST_API_KEY]
    for environment, cloud in clouds.items():
        keys += [config_key for _, config_key in deploy_secrets(environment, cloud).values()]
    return keys


# config the operator sets before the first `pulumi up` (not secret, no default: see
# docs/first-deployment.md), with how to set it
OPERATOR_CONFIG = {
    "productionReviewers": (
        f"pulumi config set --path '{PROJECT}:productionReviewers[0]' TEAM_ID "
        "(a GitHub team whose approval prod deploys require)"
    ),
}


def parse_settings(data: dict[str, object]) -> BootstrapSettings:
    """Validated settings; a missing or empty operator setting is named with how to set it."""
    missing = [k for k in OPERATOR_CONFIG if not data.get(k)]
    if missing:
        raise ValueError(
            "bootstrap needs operator config: "
            + "; ".join(f"{PROJECT}:{k} is not set: {OPERATOR_CONFIG[k]}" for k in missing)
        )
    return BootstrapSettings.model_validate(data)


def load_settings() -> BootstrapSettings:
    cfg = pulumi.Config(PROJECT)
    data: dict[str, object] = {}
    for name, field in BootstrapSettings.model_fields.items():
        key = field.alias or name
        value = cfg.get(key)
        if value is not None:
            data[key] = json.loads(value) if value[:1] in "[{" else value
    return parse_settings(data)
