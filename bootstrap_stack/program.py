"""The bootstrap program: cloud trust (Azure, AWS), Pulumi Cloud (issuer, ESC environments) and
GitHub (environments, variables, secrets). `workflow_inputs` is the one table of what the deploy
workflows read and which output delivers it."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_github as github
import pulumi_kubernetes as k8s
import pulumi_pulumiservice as ps

from bootstrap_stack.aks_rbac import AksDeployerBindings, AksDeployerBindingsArgs
from bootstrap_stack.aws import AwsTrust, AwsTrustArgs
from bootstrap_stack.azure import AzureTrust, AzureTrustArgs
from bootstrap_stack.github import GithubArgs, GithubSettings
from bootstrap_stack.pulumi_cloud import PulumiCloud, PulumiCloudArgs
from bootstrap_stack.settings import (
    ENVIRONMENT_CLOUDS,
    LOAD_TEST_API_KEY,
    PROJECT,
    SMOKE_API_KEY,
    BootstrapSettings,
    deploy_secrets,
    load_settings,
)
from stacks.config import FlowConfig
from stacks.platform_ref import PLATFORM_PROJECT, platform_stack_name


def workflow_inputs(
    settings: BootstrapSettings,
    azure: AzureTrust,
    aws_trust: AwsTrust,
    platforms: dict[str, pulumi.StackReference],
    smoke_key: pulumi.Input[str],
    load_test_key: pulumi.Input[str],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(repository variables, environment variables, environment secrets)."""
    url = {
        s: platforms[s].require_output("hostname").apply(lambda h: f"https://{h}")
        for s in platforms
    }
    cluster = {s: platforms[s].require_output("clusterName") for s in platforms}
    prod = {"AWS_REGION": settings.aws.region, "KUBE_CLUSTER": cluster["prod"]}
    keys = {"SMOKE_API_KEY": smoke_key}
    return (
        {
            "PULUMI_ORG": settings.organization,
            "IMAGE_REPOSITORY": settings.image_repository,
            # not secret, read in every environment (smoke, load test, rotation, evaluation)
            "STAGING_URL": url["staging"],
            "PROD_URL": url["prod"],
            "FLOW_BASE_URL": FlowConfig().base_url,  # the gateway evaluate.yml's judge uses
        },
        {
            "staging": {
                "AZURE_CLIENT_ID": azure.client_id,
                "AZURE_TENANT_ID": azure.tenant_id,
                "AZURE_SUBSCRIPTION_ID": azure.subscription_id,
                "KUBE_RESOURCE_GROUP": platforms["staging"].require_output("resourceGroup"),
                "KUBE_CLUSTER": cluster["staging"],
                # the nightly evaluation's target (in-cluster: evaluate.yml port-forwards to it)
                "PUSHGATEWAY_URL": platforms["staging"].require_output("pushgatewayUrl"),
            },
            "production": {"AWS_ROLE_ARN": aws_trust.deploy_role_arn, **prod},
            "production-readonly": {"AWS_ROLE_ARN": aws_trust.readonly_role_arn, **prod},
        },
        {
            "staging": {**keys, "LOAD_TEST_API_KEY": load_test_key},
            "production": {**keys, "LOAD_TEST_API_KEY": load_test_key},
            "production-readonly": keys,
        },
    )


def esc_ids(azure: AzureTrust, aws_trust: AwsTrust) -> dict[str, dict[str, pulumi.Input[str]]]:
    """What each committed ESC definition reads as ${ids.NAME} (and hands the service stack)."""
    return {
        "staging": {
            "clientId": azure.esc_client_id,  # ESC's identity (azure-login)
            "tenantId": azure.tenant_id,
            "subscriptionId": azure.subscription_id,
            "vault": azure.vault_name,  # the deploy vault
            "deployPrincipalId": azure.principal_id,  # writer on the stack's vault (rotation)
        },
        "prod": {"roleArn": aws_trust.esc_role_arn},
    }


def main() -> None:
    settings = load_settings()
    cfg = pulumi.Config(PROJECT)
    azure_provider = azure_native.Provider("bootstrap-azure", location=settings.azure.location)
    aws_provider = aws.Provider("bootstrap-aws", region=settings.aws.region)
    github_provider = github.Provider("bootstrap-github", owner=settings.repository.split("/")[0])
    pulumi_provider = ps.Provider("bootstrap-pulumi")
    secrets = {
        cloud: {
            secret_name: cfg.require_secret(config_key)
            for secret_name, config_key in deploy_secrets(environment, cloud).values()
        }
        for environment, cloud in ENVIRONMENT_CLOUDS.items()
    }
    platforms = {
        stack: pulumi.StackReference(platform_stack_name(f"{PLATFORM_PROJECT}/{stack}"))
        for stack in ENVIRONMENT_CLOUDS
    }
    azure = AzureTrust(
        "bootstrap",
        AzureTrustArgs(
            settings,
            azure_provider,
            secrets["azure"],
            platform_group=platforms["staging"].require_output("resourceGroup"),
            cluster_name=platforms["staging"].require_output("clusterName"),
            service_namespaces=platforms["staging"].require_output("serviceNamespaces"),
        ),
    )
    # the staging deploy identity on the platform's Kubernetes roles (custom kinds, preflight)
    staging_kube = k8s.Provider(
        "bootstrap-staging-k8s", kubeconfig=platforms["staging"].require_output("kubeconfig")
    )
    AksDeployerBindings(
        "bootstrap",
        AksDeployerBindingsArgs(
            azure.principal_id,
            platforms["staging"].require_output("serviceNamespaces"),
            staging_kube,
        ),
    )
    aws_trust = AwsTrust(
        "bootstrap",
        AwsTrustArgs(
            settings,
            aws_provider,
            namespaces=platforms["prod"].require_output("serviceNamespaces"),
            deploy_secrets=secrets["aws"],
        ),
    )
    PulumiCloud(
        "bootstrap",
        PulumiCloudArgs(
            settings,
            pulumi_provider,
            ids=esc_ids(azure, aws_trust),
        ),
    )
    repo_vars, env_vars, env_secrets = workflow_inputs(
        settings,
        azure,
        aws_trust,
        platforms,
        cfg.require_secret(SMOKE_API_KEY),
        cfg.require_secret(LOAD_TEST_API_KEY),
    )
    GithubSettings(
        "bootstrap", GithubArgs(settings, github_provider, repo_vars, env_vars, env_secrets)
    )
    pulumi.export("repositoryVariables", repo_vars)
    pulumi.export("environmentVariables", env_vars)
    pulumi.export("deployPrincipalId", azure.principal_id)
