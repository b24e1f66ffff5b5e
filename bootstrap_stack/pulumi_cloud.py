"""Pulumi Cloud: the GitHub OIDC issuer with its authorization policy, and the ESC environments:
per stack, `flowchat/<stack>-ids` (the ids this bootstrap created) and `flowchat/<stack>` (the
committed deploy/esc definition as it is, which imports the ids and reads them as ${ids.NAME})."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_pulumiservice as ps
import yaml

from bootstrap_stack import trust
from bootstrap_stack.settings import BootstrapSettings
from stacks import esc


def ids_definition(values: Mapping[str, str]) -> str:
    """The ids environment `flowchat/<environment>-ids` the committed definition imports."""
    return yaml.safe_dump(esc.ids_document(values), sort_keys=True)


@dataclass(frozen=True)
class PulumiCloudArgs:
    settings: BootstrapSettings
    provider: ps.Provider
    # environment (staging, prod) -> the ids its committed definition reads as ${ids.NAME}
    ids: Mapping[str, Mapping[str, pulumi.Input[str]]]


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
        for environment, values in args.ids.items():
            ids_project, ids_name = esc.ids_environment(environment).split("/")
            ids = ps.Environment(
                f"{name}-esc-{environment}-ids",
                organization=settings.organization,
                project=ids_project,
                name=ids_name,
                yaml=pulumi.Output.all(**values).apply(
                    lambda v: pulumi.StringAsset(ids_definition(v))
                ),
                opts=child,
            )
            # the committed definition as it is: it imports the ids environment
            ps.Environment(
                f"{name}-esc-{environment}",
                organization=settings.organization,
                project=esc.ESC_PROJECT,
                name=environment,
                yaml=pulumi.StringAsset(esc.definition_path(environment).read_text()),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[ids])),
            )
        self.register_outputs({})
