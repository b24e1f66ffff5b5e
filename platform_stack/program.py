"""The platform program: settings -> cluster (AKS | EKS) -> add-ons -> the outputs the service
stack reads (platform_stack.outputs). `mode: external` creates nothing and exports the given
values."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_kubernetes as k8s

from platform_stack.addons import Addons, AddonsArgs
from platform_stack.cluster_aks import AksArgs, AksCluster
from platform_stack.cluster_eks import EksArgs, EksCluster
from platform_stack.deployer_rbac import DeployerRbac, DeployerRbacArgs
from platform_stack.log_shipping import LogShipping, LogShippingArgs, aws_store, azure_store
from platform_stack.namespaces import ServiceNamespaces, ServiceNamespacesArgs
from platform_stack.outputs import platform_outputs
from platform_stack.settings import load_settings


def main() -> None:
    settings = load_settings()
    extra: dict[str, object] = {}
    if settings.mode == "external":
        values = platform_outputs(settings, None, None)
    else:
        cloud: pulumi.ProviderResource
        if settings.cloud == "azure":
            assert settings.azure is not None
            cloud = azure_native.Provider("platform-azure", location=settings.azure.location)
            cluster = AksCluster("platform", AksArgs(settings, cloud))  # type: ignore[arg-type]
            addon_args: dict[str, object] = {}
            # the group this program owns; bootstrap scopes its grants to it (never creates it)
            extra["resourceGroup"] = settings.azure.resource_group
        else:
            assert settings.aws is not None
            cloud = aws.Provider("platform-aws", region=settings.aws.region)
            eks = EksCluster("platform", EksArgs(settings, cloud))  # type: ignore[arg-type]
            cluster = eks  # type: ignore[assignment]
            addon_args = {"file_system_id": eks.file_system_id, "zone_id": eks.zone_id}
        kube = k8s.Provider("platform-k8s", kubeconfig=cluster.kubeconfig)
        addons = Addons("platform", AddonsArgs(settings, kube, cloud, **addon_args))  # type: ignore[arg-type]
        namespaces = ServiceNamespaces(
            "platform", ServiceNamespacesArgs(settings.service_namespaces, kube)
        )
        # the deploy identities' rights on the service's custom kinds and preflight's reads
        DeployerRbac(
            "platform",
            DeployerRbacArgs(settings.service_namespaces, kube, depends_on=[namespaces]),
        )
        if settings.logs is not None:  # the pods' JSON lines to the team's Elasticsearch
            logs = settings.logs
            if settings.cloud == "aws":
                assert settings.aws is not None
                store = aws_store(
                    settings.stack, settings.aws.region, logs.role_arn, logs.api_key_entry
                )
            else:
                store = azure_store(
                    settings.stack,
                    logs.client_id,
                    logs.tenant_id,
                    logs.vault_name,
                    logs.api_key_entry,
                )
            LogShipping(
                "platform",
                LogShippingArgs(
                    stack=settings.stack,
                    elasticsearch_url=logs.elasticsearch_url,
                    credentials_secret=logs.credentials_secret,
                    store=store,
                    crds=[addons.releases["external-secrets"]],
                ),
                opts=pulumi.ResourceOptions(providers=[kube]),
            )
        provider_arn = getattr(cluster, "oidc_provider_arn", "")  # EKS only
        values = platform_outputs(
            settings, cluster.cluster_name, cluster.oidc_issuer_url, provider_arn
        )
        extra["kubeconfig"] = cluster.kubeconfig
    for name, value in {**values, **extra}.items():
        pulumi.export(name, value)
