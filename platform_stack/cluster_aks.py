"""AKS: the staging cluster with workload identity, its OIDC issuer, Azure network policy and the
application routing add-on (IngressClass `webapprouting.kubernetes.azure.com`), which also keeps
the DNS records of the platform's Azure DNS zone in step with the Ingress hosts."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure_native
import yaml
from pulumi_azure_native import authorization, containerservice, dns, resources

from platform_stack.settings import PlatformSettings

DNS_ZONE_CONTRIBUTOR = "befefa01-2a29-4197-83a8-272ff33ce314"  # built-in role id
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"  # built-in role id
KUBELOGIN_LOGIN = "azurecli"  # the login of whoever runs `pulumi up` (az login)


def azurecli_kubeconfig(kubeconfig: str) -> str:
    """The cluster user's kubeconfig with kubelogin in `--login azurecli` mode: the default
    (devicecode) waits for a person to type a code, so the Helm releases would hang."""
    doc = yaml.safe_load(kubeconfig) or {}
    for user in doc.get("users") or []:
        exec_ = (user.get("user") or {}).get("exec") or {}
        if exec_.get("command") != "kubelogin":
            continue
        args = list(exec_.get("args") or [])
        if "--login" in args:
            at = args.index("--login")
            del args[at : at + 2]
        exec_["args"] = [*args, "--login", KUBELOGIN_LOGIN]
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class AksArgs:
    settings: PlatformSettings
    provider: azure_native.Provider


class AksCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: AksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:platform:AksCluster", name, None, opts)
        settings = args.settings
        azure = settings.azure
        assert azure is not None
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        group = resources.ResourceGroup(
            f"{name}-group",
            resource_group_name=azure.resource_group,
            location=azure.location,
            opts=child,
        )
        zone = dns.Zone(
            f"{name}-zone",
            zone_name=settings.dns_zone,
            resource_group_name=group.name,
            location="global",
            opts=child,
        )
        cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_name_=settings.cluster_name,
            resource_group_name=group.name,
            location=azure.location,
            dns_prefix=settings.cluster_name,
            kubernetes_version=azure.kubernetes_version,
            identity={"type": "SystemAssigned"},
            agent_pool_profiles=[
                {
                    "name": "system",
                    "mode": "System",
                    "count": azure.node_count,
                    "vm_size": azure.vm_size,
                    "os_type": "Linux",
                }
            ],
            # Entra ID users only (the deploy identity gets a data-plane role from bootstrap)
            aad_profile={"managed": True, "enable_azure_rbac": True},
            disable_local_accounts=True,
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            # Azure CNI with Azure network policy: NetworkPolicy objects are enforced
            network_profile={"network_plugin": "azure", "network_policy": "azure"},
            ingress_profile={
                "web_app_routing": {"enabled": True, "dns_zone_resource_ids": [zone.id]}
            },
            opts=child,
        )
        # app routing's external-dns writes the Ingress hosts into the zone
        authorization.RoleAssignment(
            f"{name}-app-routing-dns",
            principal_id=cluster.ingress_profile.apply(
                lambda p: p.web_app_routing.identity.object_id  # type: ignore[union-attr]
            ),
            principal_type="ServicePrincipal",
            role_definition_id=f"/providers/Microsoft.Authorization/roleDefinitions/{DNS_ZONE_CONTRIBUTOR}",
            scope=zone.id,
            opts=child,
        )
        # whoever runs this program installs the Helm releases: with local accounts disabled
        # and Azure RBAC, nothing else lets them in
        caller = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(provider=args.provider)
        )
        admin = authorization.RoleAssignment(
            f"{name}-caller-cluster-admin",
            principal_id=caller.object_id,
            role_definition_id=f"/providers/Microsoft.Authorization/roleDefinitions/{AKS_RBAC_CLUSTER_ADMIN}",
            scope=cluster.id,
            opts=child,
        )
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(provider=args.provider),
        )
        self.cluster_name = cluster.name
        self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(
            lambda p: p.issuer_url if p else ""  # type: ignore[union-attr]
        )
        # used only once the caller's data-plane role exists
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                credentials.kubeconfigs.apply(lambda k: base64.b64decode(k[0].value).decode()),
                admin.id,
            ).apply(lambda a: azurecli_kubeconfig(a[0]))
        )
        self.register_outputs(
            {"clusterName": self.cluster_name, "oidcIssuerUrl": self.oidc_issuer_url}
        )
