"""Secret-manager entries, the identity that reads them, and their delivery to pods.

Entries (one per key of `app.contracts.STACK_SECRET_KEYS`, named by `secret_entry_name`): the
Flow credentials, ADMIN_TOKEN, API_KEYS, REDIS_PASSWORD and KEY_ID_SECRET.

Values never flow through Pulumi. The program creates no value at all, so no later change
(tags, content type, a replacement) can write a placeholder over a real value:
- `cloud: azure`: the program creates the vault (RBAC) and the grants; `ops.bootstrap secrets`
  creates each entry with its first real value (data plane), `ops.rotate_credentials` writes
  every later version.
- `cloud: aws`: the program creates each Secrets Manager secret as metadata only (name, tags,
  description; no SecretVersion), so the IAM policy can name exactly these ARNs;
  `ops.bootstrap secrets` writes the first version, rotation the later ones.
Until the values are written the ExternalSecret is not Ready and, because the Deployments wait
for it (below), `pulumi up` fails with that reason instead of rolling pods that cannot start.
docs/first-deployment.md writes them (after a targeted `pulumi up` of this component's cloud
resources) before the first full deploy.

Identity (item 4 of issue 9). Azure: a user-assigned identity, a federated credential for the
`flowchat-external-secrets` service account (the AKS OIDC issuer), the "Key Vault Secrets User"
role on the vault, and "Key Vault Secrets Officer" for the rotation principal
(`azure.rotationPrincipalId`). AWS: an IRSA role trusted by the EKS OIDC provider for that service
account only, with GetSecretValue/DescribeSecret on exactly the stack's secret ARNs. Teams that
manage IAM elsewhere pass `azure.workloadIdentityClientId` / `aws.roleArn` instead.

Delivery: a SecretStore (`app.contracts.EXTERNAL_SECRETS_API`, provider azurekv or aws) that
authenticates as that service account, and an ExternalSecret mapping every entry to a key of the
Kubernetes Secret `EXTERNAL_SECRET`, refreshed hourly, carrying `pulumi.com/waitFor` on its Ready
condition so every resource that depends on it (the Deployments) waits for the sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import get_caller_identity_output, iam, secretsmanager
from pulumi_azure_native import authorization, keyvault, managedidentity

from app.contracts import (
    APP_NAME,
    EXTERNAL_SECRET,
    EXTERNAL_SECRETS_API,
    STACK_SECRET_KEYS,
    secret_entry_name,
)
from stacks.aws_trust import web_identity_trust
from stacks.config import StackConfig
from stacks.kube import KubeNamespace, metadata
from stacks.platform_ref import Platform

SECRET_STORE = f"{APP_NAME}-secret-store"
SERVICE_ACCOUNT = f"{APP_NAME}-external-secrets"
REFRESH_INTERVAL = "1h"
# The await annotation of pulumi-kubernetes: the ExternalSecret is created only once Ready=True.
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"
WAIT_FOR_READY = "condition=Ready"
# Azure built-in roles (role definition GUIDs are fixed across tenants).
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
AZURE_TOKEN_AUDIENCE = "api://AzureADTokenExchange"
AWS_TOKEN_AUDIENCE = "sts.amazonaws.com"
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")


def external_secrets_role_name(stack: str) -> str:
    """The IAM role the prod stack creates for External Secrets (IRSA): the one role the deploy
    role may write (bootstrap_stack.aws.deploy_policy)."""
    return f"{APP_NAME}-{stack}-external-secrets"


def external_secrets_boundary_name(stack: str) -> str:
    """The managed policy bootstrap creates as the permissions boundary of that role: whatever
    the deploy role writes into the role, it can do no more than read the stack's secrets."""
    return f"{external_secrets_role_name(stack)}-boundary"


def external_secrets_boundary_arn(account: str, stack: str) -> str:
    return f"arn:aws:iam::{account}:policy/{external_secrets_boundary_name(stack)}"


def secret_read_policy(resources: list[str]) -> str:
    """External Secrets' rights on Secrets Manager: the role's inline policy (exact ARNs) and its
    permissions boundary (the stack's entry names) are both this one statement."""
    statement = {"Effect": "Allow", "Action": list(SECRET_READ_ACTIONS), "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def external_secrets_boundary(region: str, account: str, stack: str) -> str:
    """The boundary document: the read actions on the stack's entries only (Secrets Manager adds
    a 6-character suffix to each secret's ARN)."""
    return secret_read_policy(
        [
            f"arn:aws:secretsmanager:{region}:{account}:secret:"
            f"{secret_entry_name('aws', stack, key)}-??????"
            for key in STACK_SECRET_KEYS
        ]
    )


def service_account_subject(namespace: str) -> str:
    """The token subject of External Secrets' service account (federated credential, IRSA)."""
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


@dataclass(frozen=True)
class SecretsArgs:
    config: StackConfig
    kube: KubeNamespace
    cloud_provider: pulumi.ProviderResource | None = None
    # the cluster's OIDC issuer (and, on EKS, its IAM OIDC provider) unless config names them
    platform: Platform | None = None


class Secrets(pulumi.ComponentResource):
    """Secret-manager entries + identity + grants, and SecretStore + ExternalSecret."""

    secret_name: str  # the Kubernetes Secret pods read (app.contracts.EXTERNAL_SECRET)
    entries: dict[str, str]  # STACK_SECRET_KEYS -> entry name in Key Vault / Secrets Manager
    external_secret: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowchat:stacks:Secrets", name, None, opts)
        config = args.config
        self._platform = args.platform
        self._cloud_opts = pulumi.ResourceOptions(parent=self, provider=args.cloud_provider)
        self.secret_name = EXTERNAL_SECRET
        self.entries = {
            key: secret_entry_name(config.cloud, config.stack, key) for key in STACK_SECRET_KEYS
        }
        if config.cloud == "azure":
            stored, provider, sa_annotations = self._azure(name, config)
        else:
            stored, provider, sa_annotations = self._aws(name, config)

        kube = args.kube
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
            opts=kube.opts_for(self, account, *stored),
        )
        self.external_secret = k8s.apiextensions.CustomResource(
            f"{name}-external-secret",
            api_version=EXTERNAL_SECRETS_API,
            kind="ExternalSecret",
            metadata=metadata(
                EXTERNAL_SECRET,
                config.namespace,
                config.stack,
                "secrets",
                annotations={WAIT_FOR_ANNOTATION: WAIT_FOR_READY},
            ),
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

    # --- Azure ---------------------------------------------------------------------------
    def _from_platform(self, name: str) -> pulumi.Input[str]:
        return getattr(self._platform, name) if self._platform is not None else ""

    def _azure(
        self, name: str, config: StackConfig
    ) -> tuple[list[pulumi.Resource], dict, dict[str, pulumi.Input[str]]]:
        azure = config.azure
        vault_name = config.vault_name
        created: list[pulumi.Resource] = []
        client = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self._cloud_opts.provider)
        )
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
                opts=self._cloud_opts,
            )
            created.append(vault)
            vault_id: pulumi.Input[str] = vault.id
        else:
            vault_id = client.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/resourceGroups/{azure.resource_group}"
                    f"/providers/Microsoft.KeyVault/vaults/{vault_name}"
                )
            )

        def role(guid: str) -> pulumi.Output[str]:
            return client.subscription_id.apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
                )
            )

        client_id: pulumi.Input[str]
        if azure.workload_identity_client_id:
            client_id = azure.workload_identity_client_id
        else:
            identity = managedidentity.UserAssignedIdentity(
                f"{name}-external-secrets-identity",
                resource_name_=f"id-{APP_NAME}-{config.stack}-external-secrets",
                resource_group_name=azure.resource_group,
                location=azure.location,
                tags={"app": APP_NAME, "stack": config.stack},
                opts=self._cloud_opts,
            )
            federated = managedidentity.FederatedIdentityCredential(
                f"{name}-external-secrets-federation",
                federated_identity_credential_resource_name="external-secrets",
                resource_name_=identity.name,
                resource_group_name=azure.resource_group,
                issuer=azure.oidc_issuer_url or self._from_platform("oidc_issuer_url"),
                subject=service_account_subject(config.namespace),
                audiences=[AZURE_TOKEN_AUDIENCE],
                opts=self._cloud_opts,
            )
            reader = authorization.RoleAssignment(
                f"{name}-external-secrets-reader",
                principal_id=identity.principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=role(KEY_VAULT_SECRETS_USER),
                scope=vault_id,
                opts=self._cloud_opts,
            )
            created += [identity, federated, reader]
            client_id = identity.client_id
        if azure.rotation_principal_id:
            created.append(
                authorization.RoleAssignment(
                    f"{name}-rotation-writer",
                    principal_id=azure.rotation_principal_id,
                    principal_type="ServicePrincipal",
                    role_definition_id=role(KEY_VAULT_SECRETS_OFFICER),
                    scope=vault_id,
                    opts=self._cloud_opts,
                )
            )
        provider: dict[str, object] = {
            "azurekv": {
                "tenantId": azure.tenant_id,
                "vaultUrl": f"https://{vault_name}.vault.azure.net",
                "authType": "WorkloadIdentity",
                "serviceAccountRef": {"name": SERVICE_ACCOUNT},
            }
        }
        annotations: dict[str, pulumi.Input[str]] = {
            "azure.workload.identity/client-id": client_id,
            "azure.workload.identity/tenant-id": azure.tenant_id or "",
        }
        return created, provider, annotations

    # --- AWS -----------------------------------------------------------------------------
    def _aws(
        self, name: str, config: StackConfig
    ) -> tuple[list[pulumi.Resource], dict, dict[str, pulumi.Input[str]]]:
        created: list[pulumi.Resource] = []
        secrets: list[secretsmanager.Secret] = []
        for key, entry in self.entries.items():
            secret = secretsmanager.Secret(
                f"{name}-{key.lower().replace('_', '-')}",
                name=entry,
                description=f"flowchat {config.stack}: {key} (written by ops.rotate_credentials)",
                recovery_window_in_days=7,
                tags={"app": APP_NAME, "stack": config.stack},
                opts=self._cloud_opts,
            )
            secrets.append(secret)
        created += secrets
        role_arn: pulumi.Input[str]
        if config.aws.role_arn:
            role_arn = config.aws.role_arn
        else:
            issuer = config.aws.oidc_issuer or self._from_platform("oidc_issuer_url")
            provider_arn = config.aws.oidc_provider_arn or self._from_platform("oidc_provider_arn")
            subject = service_account_subject(config.namespace)
            trust = pulumi.Output.all(issuer, provider_arn).apply(
                lambda a: json.dumps(
                    web_identity_trust(
                        a[1], str(a[0]).removeprefix("https://"), subject, AWS_TOKEN_AUDIENCE
                    )
                )
            )
            account = get_caller_identity_output(
                opts=pulumi.InvokeOutputOptions(parent=self, provider=self._cloud_opts.provider)
            ).account_id
            role = iam.Role(
                f"{name}-external-secrets-role",
                name=external_secrets_role_name(config.stack),
                assume_role_policy=trust,
                # bootstrap's boundary: the deploy role may write this role only with it attached
                permissions_boundary=account.apply(
                    lambda a: external_secrets_boundary_arn(a, config.stack)
                ),
                tags={"app": APP_NAME, "stack": config.stack},
                opts=self._cloud_opts,
            )
            policy = iam.RolePolicy(
                f"{name}-external-secrets-read",
                role=role.id,
                policy=pulumi.Output.all(*(s.arn for s in secrets)).apply(
                    lambda arns: secret_read_policy(sorted(arns))
                ),
                opts=self._cloud_opts,
            )
            created += [role, policy]
            role_arn = role.arn
        provider = {
            "aws": {
                "service": "SecretsManager",
                "region": config.aws.region,
                "auth": {"jwt": {"serviceAccountRef": {"name": SERVICE_ACCOUNT}}},
            }
        }
        return created, provider, {"eks.amazonaws.com/role-arn": role_arn}
