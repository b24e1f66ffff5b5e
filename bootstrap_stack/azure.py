"""Azure: the staging deploy identity (GitHub OIDC) and ESC's identity (Pulumi OIDC).

Bootstrap's own resource group holds the identities and the deploy vault; the platform's group
(the cluster, the service stack's vault) is only read: the platform program creates and owns it
(its output `resourceGroup`), so no two programs create or delete the same group.
Deploy identity: Contributor on the platform's resource group; a role-assignment right limited by
an ABAC condition to the two Key Vault roles; AKS credentials on the cluster, and data-plane write
(AKS RBAC Writer) on each service namespace only (`<cluster id>/namespaces/<ns>`), not kube-system.
ESC identity: reads the deploy vault (the secret config of `deploy/esc/flowchat-staging.yaml`),
whose secrets this component writes under the names that definition reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native import authorization, keyvault, managedidentity, resources

from bootstrap_stack import trust
from bootstrap_stack.settings import BootstrapSettings


@dataclass(frozen=True)
class AzureTrustArgs:
    settings: BootstrapSettings
    provider: azure_native.Provider
    # the deploy vault's secrets ESC reads: secret name -> value (bootstrap's secret config)
    deploy_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # the staging platform's outputs (its StackReference): resourceGroup (the deploy scope),
    # clusterName and serviceNamespaces (the data-plane scopes)
    platform_group: pulumi.Input[str] = field(kw_only=True)
    cluster_name: pulumi.Input[str] = field(kw_only=True)
    service_namespaces: pulumi.Input[Sequence[str]] = field(kw_only=True)


class AzureTrust(pulumi.ComponentResource):
    client_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    esc_client_id: pulumi.Output[str]
    tenant_id: pulumi.Output[str]
    subscription_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]

    def __init__(self, name: str, args: AzureTrustArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:bootstrap:AzureTrust", name, None, opts)
        settings = args.settings
        azure = settings.azure
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        client = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(provider=args.provider)
        )
        group = resources.ResourceGroup(
            f"{name}-group",
            resource_group_name=azure.resource_group,
            location=azure.location,
            opts=child,
        )
        # the platform's group, by its ARM id (the platform stack created it; read, never owned)
        platform_scope = pulumi.Output.all(client.subscription_id, args.platform_group).apply(
            lambda a: trust.resource_group_id(*a)
        )
        cluster_id = pulumi.Output.all(
            client.subscription_id, args.platform_group, args.cluster_name
        ).apply(lambda a: trust.aks_cluster_id(*a))
        deploy = managedidentity.UserAssignedIdentity(
            f"{name}-deploy",
            resource_name_="flowchat-staging-deploy",
            resource_group_name=group.name,
            location=azure.location,
            opts=child,
        )
        managedidentity.FederatedIdentityCredential(
            f"{name}-deploy-github",
            federated_identity_credential_resource_name="github-staging",
            resource_name_=deploy.name,
            resource_group_name=group.name,
            issuer=trust.GITHUB_ISSUER,
            subject=trust.github_subject(settings.repository, trust.GITHUB_ENVIRONMENTS["staging"]),
            audiences=[trust.AZURE_AUDIENCE],
            opts=child,
        )

        def grant(
            suffix: str,
            role: str,
            principal: pulumi.Input[str],
            scope: pulumi.Input[str],
            **kw: object,
        ) -> None:
            authorization.RoleAssignment(
                f"{name}-{suffix}",
                principal_id=principal,
                principal_type="ServicePrincipal",
                role_definition_id=client.subscription_id.apply(
                    lambda s: trust.role_definition(s, role)
                ),
                scope=scope,
                opts=child,
                **kw,  # type: ignore[arg-type]
            )

        grant("deploy-contributor", trust.CONTRIBUTOR, deploy.principal_id, platform_scope)
        grant(
            "deploy-key-vault-grants",
            trust.RBAC_ADMINISTRATOR,
            deploy.principal_id,
            platform_scope,
            condition=trust.only_key_vault_roles_condition(),
            condition_version="2.0",
        )
        # listing the user kubeconfig is a control-plane action on the cluster resource
        grant("deploy-aks-user", trust.AKS_CLUSTER_USER, deploy.principal_id, cluster_id)
        # Kubernetes writes in the service namespaces only: one assignment per namespace
        pulumi.Output.from_input(args.service_namespaces).apply(
            lambda namespaces: [
                grant(
                    f"deploy-aks-writer-{namespace}",
                    trust.AKS_RBAC_WRITER,
                    deploy.principal_id,
                    cluster_id.apply(lambda c, ns=namespace: trust.aks_namespace_scope(c, ns)),
                )
                for namespace in namespaces
            ]
        )

        vault = keyvault.Vault(
            f"{name}-deploy-vault",
            vault_name=azure.deploy_vault,
            resource_group_name=group.name,
            location=azure.location,
            properties={
                "tenant_id": client.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enable_rbac_authorization": True,
                "enable_purge_protection": True,
            },
            opts=child,
        )
        esc = managedidentity.UserAssignedIdentity(
            f"{name}-esc",
            resource_name_="flowchat-staging-esc",
            resource_group_name=group.name,
            location=azure.location,
            opts=child,
        )
        managedidentity.FederatedIdentityCredential(
            f"{name}-esc-pulumi",
            federated_identity_credential_resource_name="pulumi-esc-staging",
            resource_name_=esc.name,
            resource_group_name=group.name,
            issuer=trust.PULUMI_ISSUER,
            subject=trust.esc_subject(settings.organization, "staging", "azure"),
            audiences=[trust.esc_audience(settings.organization, "azure")],
            opts=child,
        )
        grant("esc-vault-reader", trust.KEY_VAULT_SECRETS_USER, esc.principal_id, vault.id)
        for secret_name, value in sorted(args.deploy_secrets.items()):
            keyvault.Secret(
                f"{name}-deploy-secret-{secret_name}",
                secret_name=secret_name,
                vault_name=vault.name,
                resource_group_name=group.name,
                properties={"value": pulumi.Output.secret(value)},
                opts=child,
            )
        self.client_id = deploy.client_id
        self.principal_id = deploy.principal_id
        self.esc_client_id = esc.client_id
        self.tenant_id = client.tenant_id
        self.subscription_id = client.subscription_id
        self.vault_name = vault.name
        self.register_outputs({"clientId": deploy.client_id})
