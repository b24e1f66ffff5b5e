"""AWS Secrets Manager and Azure Key Vault behind one small interface.

``read`` returns the current version of an entry, ``write`` adds a new current version,
``restore`` makes a previously read version current again, and ``missing`` names the entries
that do not exist from their metadata only (AWS ``DescribeSecret``, Key Vault's list of secret
properties), never reading a value:

- AWS: ``put_secret_value`` adds a version labelled AWSCURRENT (the old one becomes
  AWSPREVIOUS); restoring moves the AWSCURRENT label back to the previous version id with
  ``update_secret_version_stage``, so no value is re-sent.
- Azure: ``set_secret`` adds a version, which becomes the latest; Key Vault has no way to make
  an older version the latest, so restoring writes the previous value as a new version and
  disables the rejected one.

Values never appear in messages or ``repr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from app.contracts import key_vault_name
from ops.summary import OpsError


class SecretVersion(BaseModel):
    """One version of a secret entry (the value is masked in repr and logs)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    value: SecretStr
    created: datetime | None = None  # when this version was written (None: not reported)


class SecretStore(Protocol):
    description: str

    def read(self, name: str) -> SecretVersion: ...

    def write(self, name: str, value: str) -> SecretVersion: ...

    def restore(self, previous: SecretVersion, rejected: SecretVersion) -> None: ...

    def missing(self, names: Sequence[str]) -> list[str]: ...


class AwsSecretStore:
    """AWS Secrets Manager through a boto3 ``secretsmanager`` client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        region = getattr(getattr(client, "meta", None), "region_name", None) or "?"
        self.description = f"AWS Secrets Manager ({region})"

    def _error(self, action: str, name: str, exc: Exception) -> OpsError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        if code == "ResourceNotFoundException":
            return OpsError(
                f"the secret {name} does not exist in {self.description}; "
                "run the stack's deploy (pulumi up) first"
            )
        return OpsError(f"{action} {name} in {self.description} failed: {code}")

    def read(self, name: str) -> SecretVersion:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            got = self.client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
        except (ClientError, BotoCoreError) as exc:
            raise self._error("reading", name, exc) from None
        return SecretVersion(
            name=name,
            version=got["VersionId"],
            value=SecretStr(got.get("SecretString") or ""),
            created=got.get("CreatedDate"),
        )

    def missing(self, names: Sequence[str]) -> list[str]:
        """Entries that do not exist or are scheduled for deletion (DescribeSecret: metadata)."""
        from botocore.exceptions import BotoCoreError, ClientError

        absent = []
        for name in names:
            try:
                described = self.client.describe_secret(SecretId=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    absent.append(name)
                    continue
                raise self._error("describing", name, exc) from None
            except BotoCoreError as exc:
                raise self._error("describing", name, exc) from None
            if described.get("DeletedDate"):
                absent.append(name)
        return absent

    def write(self, name: str, value: str) -> SecretVersion:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            put = self.client.put_secret_value(SecretId=name, SecretString=value)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("writing", name, exc) from None
        return SecretVersion(name=name, version=put["VersionId"], value=SecretStr(value))

    def restore(self, previous: SecretVersion, rejected: SecretVersion) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.update_secret_version_stage(
                SecretId=previous.name,
                VersionStage="AWSCURRENT",
                MoveToVersionId=previous.version,
                RemoveFromVersionId=rejected.version,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("restoring", previous.name, exc) from None


class AzureSecretStore:
    """Azure Key Vault through an ``azure.keyvault.secrets.SecretClient``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.description = f"Azure Key Vault {getattr(client, 'vault_url', '?')}"

    def _error(self, action: str, name: str, exc: Exception) -> OpsError:
        from azure.core.exceptions import ResourceNotFoundError

        if isinstance(exc, ResourceNotFoundError):
            return OpsError(
                f"the secret {name} does not exist in {self.description}; "
                "run the stack's deploy (pulumi up) first"
            )
        status = getattr(exc, "status_code", None)
        return OpsError(
            f"{action} {name} in {self.description} failed: {type(exc).__name__}"
            + (f" (HTTP {status})" if status else "")
        )

    def read(self, name: str) -> SecretVersion:
        from azure.core.exceptions import AzureError

        try:
            got = self.client.get_secret(name)
        except AzureError as exc:
            raise self._error("reading", name, exc) from None
        return SecretVersion(
            name=name,
            version=got.properties.version or "",
            value=SecretStr(got.value or ""),
            created=got.properties.created_on,
        )

    def missing(self, names: Sequence[str]) -> list[str]:
        """Entries absent or disabled in the vault's list of secret properties (no value read:
        the "list" secret permission)."""
        from azure.core.exceptions import AzureError

        try:
            enabled = {p.name for p in self.client.list_properties_of_secrets() if p.enabled}
        except AzureError as exc:
            raise self._error("listing", "the secrets", exc) from None
        return [name for name in names if name not in enabled]

    def write(self, name: str, value: str) -> SecretVersion:
        from azure.core.exceptions import AzureError

        try:
            got = self.client.set_secret(name, value)
        except AzureError as exc:
            raise self._error("writing", name, exc) from None
        return SecretVersion(
            name=name, version=got.properties.version or "", value=SecretStr(value)
        )

    def restore(self, previous: SecretVersion, rejected: SecretVersion) -> None:
        from azure.core.exceptions import AzureError

        try:
            self.client.set_secret(previous.name, previous.value.get_secret_value())
            self.client.update_secret_properties(
                rejected.name, version=rejected.version, enabled=False
            )
        except AzureError as exc:
            raise self._error("restoring", previous.name, exc) from None


def vault_url_for(stack: str) -> str:
    return f"https://{key_vault_name(stack)}.vault.azure.net"


def open_store(cloud: str, stack: str, *, vault_url: str | None = None) -> SecretStore:
    """The stack's secret store with credentials from the environment (OIDC in workflows)."""
    if cloud == "aws":
        import boto3

        return AwsSecretStore(boto3.client("secretsmanager"))
    if cloud == "azure":
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        url = vault_url or vault_url_for(stack)
        return AzureSecretStore(SecretClient(vault_url=url, credential=DefaultAzureCredential()))
    raise OpsError(f"unknown cloud {cloud!r}; expected aws or azure")
