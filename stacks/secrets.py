"""Flow credentials and the admin token: secret-manager entries and their delivery to pods.

Entries (one per key of `app.contracts.SECRET_KEYS`, named by `secret_entry_name`):
- `cloud: azure`: Azure Key Vault secrets, in a vault the stack creates (`azure.createVault`,
  default) or in an existing one (`azure.createVault: false`, `azure.vaultName`).
- `cloud: aws`: AWS Secrets Manager secrets, each with a SecretVersion.

Values: the stack never sees real credentials. Each entry is created once with the value
`app.contracts.SECRET_PLACEHOLDER` (marked secret) and `ignore_changes` on the value, so
`ops.rotate_credentials` owns the value: after the first `pulumi up` run rotation to write the
real credentials (with `ADMIN_TOKEN` set, or the admin routes stay disabled: the service refuses
the placeholder as an admin token); later `pulumi up`s leave them alone. Nothing secret is in the
stack files.

Delivery: a SecretStore (`app.contracts.EXTERNAL_SECRETS_API`, provider azurekv or aws)
authenticating through the `flowchat-external-secrets` service account (workload identity / IRSA
when configured) and an ExternalSecret that maps every entry to a key of the Kubernetes Secret
`EXTERNAL_SECRET`, refreshed hourly. Pods read those keys only through `valueFrom.secretKeyRef`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import secretsmanager
from pulumi_azure_native import keyvault

from app.contracts import (
    APP_NAME,
    EXTERNAL_SECRET,
    EXTERNAL_SECRETS_API,
    SECRET_KEYS,
    SECRET_PLACEHOLDER,
    secret_entry_name,
)
from stacks.config import StackConfig
from stacks.kube import KubeNamespace, metadata

SECRET_STORE = f"{APP_NAME}-secret-store"
SERVICE_ACCOUNT = f"{APP_NAME}-external-secrets"
REFRESH_INTERVAL = "1h"


@dataclass(frozen=True)
class SecretsArgs:
    config: StackConfig
    kube: KubeNamespace


class Secrets(pulumi.ComponentResource):
    """Secret-manager entries for SECRET_KEYS plus SecretStore + ExternalSecret in the namespace."""

    secret_name: str  # the Kubernetes Secret pods read (app.contracts.EXTERNAL_SECRET)
    entries: dict[str, str]  # SECRET_KEYS -> entry name in Key Vault / Secrets Manager

    def __init__(
        self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Secrets", name, None, opts)
        config = args.config
        self.secret_name = EXTERNAL_SECRET
        self.entries = {
            key: secret_entry_name(config.cloud, config.stack, key) for key in SECRET_KEYS
        }
        if config.cloud == "azure":
            stored, provider = self._azure(name, config)
        else:
            stored, provider = self._aws(name, config)

        kube = args.kube
        sa_annotations = _service_account_annotations(config)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-external-secrets-sa",
            metadata=metadata(
                SERVICE_ACCOUNT,
                config.namespace,
                config.stack,
                "secrets",
                annotations=sa_annotations,
            ),
            opts=kube.opts_for(self),
        )
        store = k8s.apiextensions.CustomResource(
            f"{name}-secret-store",
            api_version=EXTERNAL_SECRETS_API,
            kind="SecretStore",
            metadata=metadata(SECRET_STORE, config.namespace, config.stack, "secrets"),
            spec={"provider": provider},
            opts=kube.opts_for(self, account),
        )
        self.external_secret = k8s.apiextensions.CustomResource(
            f"{name}-external-secret",
            api_version=EXTERNAL_SECRETS_API,
            kind="ExternalSecret",
            metadata=metadata(EXTERNAL_SECRET, config.namespace, config.stack, "secrets"),
            spec={
                "refreshInterval": REFRESH_INTERVAL,
                "secretStoreRef": {"name": SECRET_STORE, "kind": "SecretStore"},
                "target": {"name": EXTERNAL_SECRET, "creationPolicy": "Owner"},
                "data": [
                    {"secretKey": key, "remoteRef": {"key": entry}}
                    for key, entry in self.entries.items()
                ],
            },
            opts=kube.opts_for(self, store, *stored),
        )
        self.register_outputs({"secretName": self.secret_name, "entries": self.entries})

    def _azure(self, name: str, config: StackConfig) -> tuple[list[pulumi.Resource], dict]:
        azure = config.azure
        vault_name = config.vault_name
        created: list[pulumi.Resource] = []
        vault_opts = pulumi.ResourceOptions(parent=self)
        if azure.create_vault:
            vault = keyvault.Vault(
                f"{name}-vault",
                vault_name=vault_name,
                resource_group_name=azure.resource_group,
                location=azure.location,
                properties=keyvault.VaultPropertiesArgs(
                    tenant_id=azure.tenant_id or "",
                    sku=keyvault.SkuArgs(family="A", name="standard"),
                    enable_rbac_authorization=True,
                    enable_soft_delete=True,
                    soft_delete_retention_in_days=90,
                    enable_purge_protection=True,
                ),
                tags={"app": APP_NAME, "stack": config.stack},
                opts=vault_opts,
            )
            created.append(vault)
            vault_opts = pulumi.ResourceOptions(parent=self, depends_on=[vault])
        for key, entry in self.entries.items():
            created.append(
                keyvault.Secret(
                    f"{name}-{entry}",
                    secret_name=entry,
                    vault_name=vault_name,
                    resource_group_name=azure.resource_group,
                    properties=keyvault.SecretPropertiesArgs(
                        value=pulumi.Output.secret(SECRET_PLACEHOLDER),
                        content_type=f"{key} (rotated by ops.rotate_credentials)",
                    ),
                    tags={"app": APP_NAME, "stack": config.stack},
                    opts=pulumi.ResourceOptions.merge(
                        vault_opts, pulumi.ResourceOptions(ignore_changes=["properties.value"])
                    ),
                )
            )
        provider: dict[str, object] = {
            "azurekv": {
                "tenantId": azure.tenant_id,
                "vaultUrl": f"https://{vault_name}.vault.azure.net",
                **(
                    {"authType": "WorkloadIdentity", "serviceAccountRef": {"name": SERVICE_ACCOUNT}}
                    if azure.workload_identity_client_id
                    else {"authType": "ManagedIdentity"}
                ),
            }
        }
        return created, provider

    def _aws(self, name: str, config: StackConfig) -> tuple[list[pulumi.Resource], dict]:
        created: list[pulumi.Resource] = []
        for key, entry in self.entries.items():
            logical = f"{name}-{key.lower().replace('_', '-')}"
            secret = secretsmanager.Secret(
                logical,
                name=entry,
                description=f"flowchat {config.stack}: {key} (rotated by ops.rotate_credentials)",
                recovery_window_in_days=7,
                region=config.aws.region,
                tags={"app": APP_NAME, "stack": config.stack},
                opts=pulumi.ResourceOptions(parent=self),
            )
            version = secretsmanager.SecretVersion(
                f"{logical}-initial",
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(SECRET_PLACEHOLDER),
                region=config.aws.region,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secretString"]),
            )
            created += [secret, version]
        auth: dict[str, object] = (
            {"auth": {"jwt": {"serviceAccountRef": {"name": SERVICE_ACCOUNT}}}}
            if config.aws.role_arn
            else {}
        )
        provider = {"aws": {"service": "SecretsManager", "region": config.aws.region, **auth}}
        return created, provider


def _service_account_annotations(config: StackConfig) -> dict[str, str]:
    if config.cloud == "azure" and config.azure.workload_identity_client_id:
        return {"azure.workload.identity/client-id": config.azure.workload_identity_client_id}
    if config.cloud == "aws" and config.aws.role_arn:
        return {"eks.amazonaws.com/role-arn": config.aws.role_arn}
    return {}
