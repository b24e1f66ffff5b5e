"""Config of what the service runs on and reports to: the cloud, the cluster's add-ons, Grafana
and the alert receiver.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from stacks.config_types import EMAIL, ConfigModel


class AzureConfig(ConfigModel):
    resource_group: str | None = None
    location: str = "westeurope"
    tenant_id: str | None = None
    # None: the azure-native provider reads ARM_SUBSCRIPTION_ID (the deploy job's env)
    subscription_id: str | None = None
    vault_name: str | None = None  # default: app.contracts.key_vault_name(stack)
    create_vault: bool = True  # false: use an existing vault called vault_name
    # Existing identity for External Secrets (teams that manage IAM elsewhere): its client id.
    # None: the program creates a user-assigned identity + federated credential + role assignment.
    workload_identity_client_id: str | None = None
    # The AKS cluster's OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl); needed
    # for the federated credential the program creates.
    oidc_issuer_url: str | None = None
    # Principal (object id) of the rotation identity (ops.rotate_credentials in CI): gets
    # "Key Vault Secrets Officer" on the vault. None: no writer grant (rotation cannot write).
    rotation_principal_id: str | None = None


class AwsConfig(ConfigModel):
    region: str = "eu-west-1"
    # Existing IRSA role External Secrets assumes (teams that manage IAM elsewhere). None: the
    # program creates the role from the EKS OIDC provider below.
    role_arn: str | None = None
    # The EKS cluster's IAM OIDC provider (ARN) and its issuer without https://
    # (aws eks describe-cluster --query cluster.identity.oidc.issuer).
    oidc_provider_arn: str | None = None
    oidc_issuer: str | None = None


class GrafanaConfig(ConfigModel):
    """The Grafana instance alerts and the dashboard go to (explicit provider config).

    `auth` (a service-account token, or user:password) is secret config `flowchat:grafanaAuth`,
    delivered by the stack's ESC environment; never committed.
    """

    url: str | None = None
    org_id: int | None = Field(None, ge=1)
    auth: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class AddonsConfig(ConfigModel):
    """What the stack says to the cluster's monitoring add-ons; defaults match
    kube-prometheus-stack. Where KEDA, the ingress controller, Prometheus and the prober run comes
    from the platform (stacks.platform_ref); a managed Grafana generates its own datasource uid.
    """

    prometheus_datasource_uid: str = "prometheus"
    # labels kube-prometheus-stack's Prometheus selects ServiceMonitors / Probes by
    monitor_labels: dict[str, str] = {"release": "kube-prometheus-stack"}


class ChatRoute(ConfigModel):
    """`flowchat:alerting.chat`: a Slack contact point for the severities that do not page
    (stacks.escalation.SEVERITY_ROUTES: warning) when the main contact point pages (PagerDuty).
    Its webhook is the secret config `flowchat:alertingChatUrl` (ESC)."""

    contact_point: str = Field(min_length=1)
    url: SecretStr | None = None

    @model_validator(mode="after")
    def _check_url(self) -> ChatRoute:
        if self.url is None:
            raise ValueError(
                "chat needs url (the Slack webhook, a secret: flowchat:alertingChatUrl)"
            )
        return self


class AlertingConfig(ConfigModel):
    """Where alerts go: one Grafana contact point per stack.

    `url` is the Slack webhook (type slack), `integration_key` the PagerDuty routing key (type
    pagerduty); both are SecretStr and must be wrapped with `pulumi.Output.secret` by consumers.
    `addresses` are e-mail recipients (required for type email, optional extra for the others).
    """

    contact_point: str = ""  # default: flowchat-<stack>
    type: Literal["email", "slack", "pagerduty"] = "email"
    addresses: list[str] = []
    url: SecretStr | None = None
    integration_key: SecretStr | None = None
    chat: ChatRoute | None = None  # where warnings go when `type` pages

    @field_validator("addresses")
    @classmethod
    def _check_addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not EMAIL.match(a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _check_receiver(self) -> AlertingConfig:
        if self.type == "email" and not self.addresses:
            raise ValueError("type email needs at least one entry in addresses")
        if self.type == "slack" and self.url is None:
            raise ValueError("type slack needs url (a secret: flowchat:alertingUrl)")
        if self.type == "pagerduty" and self.integration_key is None:
            raise ValueError("type pagerduty needs integrationKey (a secret: flowchat:alertingUrl)")
        if self.chat is not None and self.chat.contact_point == self.contact_point:
            raise ValueError("chat.contactPoint must differ from contactPoint")
        return self
