"""Helpers of tests/stacks (imported by name: keep this basename unique across tests/).

`rendered` holds both stacks on both clouds, rendered by the components alone (config -> namespace
-> secrets -> service) so these tests do not depend on stacks.monitoring.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stacks.config import load_config  # noqa: E402
from stacks.kube import KubeNamespace  # noqa: E402
from stacks.platform_ref import resolve_platform  # noqa: E402
from stacks.providers import make_providers  # noqa: E402
from stacks.render import RenderedResource, render_program, stack_config  # noqa: E402
from stacks.secrets import Secrets, SecretsArgs  # noqa: E402
from stacks.service import Service, ServiceArgs  # noqa: E402

STACKS = ("staging", "prod")
CLOUDS = ("azure", "aws")
AZURE = {
    "resourceGroup": "rg-flowchat-test",
    "tenantId": "11111111-2222-3333-4444-555555555555",
    "oidcIssuerUrl": "https://westeurope.oic.prod-aks.azure.com/tenant/cluster/",
    "rotationPrincipalId": "99999999-2222-3333-4444-555555555555",
}
AWS = {
    "region": "eu-central-1",
    "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.example/id/T",
    "oidcIssuer": "oidc.eks.example/id/T",
}
CLOUD_OVERRIDES = {
    "azure": {"cloud": "azure", "azure": json.dumps(AZURE)},
    "aws": {"cloud": "aws", "aws": json.dumps(AWS)},
}
COMBOS = [(stack, cloud) for stack in STACKS for cloud in CLOUDS]


def external_platform(stack: str, **changes: str) -> dict[str, str]:
    """The outputs the platform stack gives `stack` offline, as `platform.external` values."""
    from stacktools.render import platform_reference_outputs

    return {**platform_reference_outputs(f"org/flowchat-platform/{stack}"), **changes}


def components_program() -> None:
    config = load_config()
    providers = make_providers("flowchat", config)
    platform = resolve_platform(config.platform)
    kube = KubeNamespace("flowchat", config, providers.kubernetes, platform.service_namespaces)
    secrets = Secrets("flowchat", SecretsArgs(config, kube, providers.cloud, platform))
    Service(
        "flowchat",
        ServiceArgs(config, kube, platform, secrets.secret_name, (secrets.external_secret,)),
    )


def render_components(
    stack: str, overrides: dict[str, str] | None = None
) -> list[RenderedResource]:
    values, secret = stack_config(stack, config_overrides=overrides)
    return render_program(components_program, stack=stack, config=values, secret_keys=secret)


class Rendered:
    """One rendered stack with look-ups by Kubernetes kind and metadata.name."""

    def __init__(self, stack: str, cloud: str, resources: list[RenderedResource]) -> None:
        self.stack, self.cloud, self.resources = stack, cloud, resources

    def of_type(self, suffix: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.type.endswith(suffix)]

    def manifest(self, kind: str, name: str) -> dict:
        found = [
            r.inputs
            for r in self.resources
            if r.type.startswith("kubernetes:")
            and r.inputs.get("kind") == kind
            and r.inputs["metadata"]["name"] == name
        ]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def manifests(self) -> list[dict]:
        return [
            r.inputs
            for r in self.resources
            if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs
        ]
