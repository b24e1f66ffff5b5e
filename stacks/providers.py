"""Explicit providers: every resource names its provider, none falls back to ambient state.

The stack files set `pulumi:disable-default-providers` for kubernetes, grafana, azure-native and
aws, so a resource created without one of these providers fails at once instead of using
whatever kubeconfig, Grafana or cloud login happens to be around. What each provider needs:

- kubernetes: `flowchat:kubeconfig` (secret) or, normally, `KUBECONFIG` set by the deploy job's
  cluster-credentials step (azure/aks-set-context, or `aws eks update-kubeconfig`) before
  `pulumi up`.
- grafana: `flowchat:grafana.url` (stack file) and `flowchat:grafanaAuth` (ESC environment).
- azure-native: the subscription from `flowchat:azure.subscriptionId` or `ARM_SUBSCRIPTION_ID`,
  OIDC login from `ARM_USE_OIDC`, `ARM_CLIENT_ID`, `ARM_TENANT_ID` (the deploy job's env).
- aws: `flowchat:aws.region`; credentials from aws-actions/configure-aws-credentials.
- pagerduty (stacks/escalation.py, only with `flowchat:escalation`): its own provider, token from
  the secret config `flowchat:pagerdutyToken` (ESC environment).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_kubernetes as k8s
import pulumiverse_grafana as grafana

from stacks.config import StackConfig

# Packages whose default provider the stack files disable (`pulumi:disable-default-providers`).
EXPLICIT_PACKAGES = ("kubernetes", "grafana", "azure-native", "aws", "pagerduty")


@dataclass(frozen=True)
class Providers:
    kubernetes: k8s.Provider
    grafana: grafana.Provider
    cloud: pulumi.ProviderResource  # azure-native or aws, after flowchat:cloud


def make_providers(name: str, config: StackConfig) -> Providers:
    kubeconfig = (
        pulumi.Output.secret(config.kubeconfig.get_secret_value()) if config.kubeconfig else None
    )
    kube = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig)
    auth = config.grafana.auth.get_secret_value() if config.grafana.auth else None
    graf = grafana.Provider(
        f"{name}-grafana",
        url=config.grafana.url,
        auth=pulumi.Output.secret(auth) if auth is not None else None,
        org_id=config.grafana.org_id,
    )
    cloud: pulumi.ProviderResource
    if config.cloud == "azure":
        cloud = azure_native.Provider(
            f"{name}-azure",
            subscription_id=config.azure.subscription_id,
            tenant_id=config.azure.tenant_id,
            location=config.azure.location,
        )
    else:
        cloud = aws.Provider(f"{name}-aws", region=config.aws.region)
    return Providers(kubernetes=kube, grafana=graf, cloud=cloud)
