"""Pulumi Cloud: the GitHub OIDC issuer with its authorization policy, and the ESC environments
(the committed deploy/esc definitions with the identities of this bootstrap filled in)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_pulumiservice as ps
import yaml

from bootstrap_stack import trust
from bootstrap_stack.settings import BootstrapSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
ESC_DIR = REPO_ROOT / "deploy" / "esc"
# where each identity value goes in the committed definitions
ESC_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "staging": {
        "clientId": ("azure", "login", "fn::open::azure-login", "clientId"),
        "tenantId": ("azure", "login", "fn::open::azure-login", "tenantId"),
        "subscriptionId": ("azure", "login", "fn::open::azure-login", "subscriptionId"),
        "vault": ("azure", "secrets", "fn::open::azure-secrets", "vault"),
    },
    "prod": {"roleArn": ("aws", "login", "fn::open::aws-login", "oidc", "roleArn")},
}


def esc_definition(environment: str, values: Mapping[str, str]) -> str:
    """deploy/esc/flowchat-<environment>.yaml with `values` in place of its placeholders."""
    doc = yaml.safe_load((ESC_DIR / f"flowchat-{environment}.yaml").read_text())
    filled: dict[str, Any] = copy.deepcopy(doc)
    for key, path in ESC_FIELDS[environment].items():
        node = filled["values"]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = values[key]
    return yaml.safe_dump(filled, sort_keys=False)


@dataclass(frozen=True)
class PulumiCloudArgs:
    settings: BootstrapSettings
    provider: ps.Provider
    staging: Mapping[str, pulumi.Input[str]]  # ESC_FIELDS["staging"] keys
    prod: Mapping[str, pulumi.Input[str]]


class PulumiCloud(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: PulumiCloudArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("flowchat:bootstrap:PulumiCloud", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ps.OidcIssuer(
            f"{name}-github-issuer",
            organization=settings.organization,
            name="github-actions",
            url=trust.GITHUB_ISSUER,
            # only this repository's workflows get an organization token (pulumi/auth-actions)
            policies=[
                ps.AuthPolicyDefinitionArgs(
                    decision=ps.AuthPolicyDecision.ALLOW,
                    token_type=ps.AuthPolicyTokenType.ORGANIZATION,
                    authorized_permissions=[ps.AuthPolicyPermissionLevel.ADMIN],
                    rules={
                        "aud": f"urn:pulumi:org:{settings.organization}",
                        "repository": settings.repository,
                    },
                )
            ],
            opts=child,
        )
        for environment, values in (("staging", args.staging), ("prod", args.prod)):
            text = pulumi.Output.all(**values).apply(lambda v, e=environment: esc_definition(e, v))
            ps.Environment(
                f"{name}-esc-{environment}",
                organization=settings.organization,
                project="flowchat",
                name=environment,
                yaml=text.apply(pulumi.StringAsset),
                opts=child,
            )
        self.register_outputs({})
