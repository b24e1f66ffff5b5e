"""GitHub: the deploy environments with their protection rules, and every variable and secret
the workflows read (`vars.X`, `secrets.X` in .github/workflows/deploy.yml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_github as github

from bootstrap_stack.settings import BootstrapSettings


@dataclass(frozen=True)
class GithubArgs:
    settings: BootstrapSettings
    provider: github.Provider
    repository_variables: Mapping[str, pulumi.Input[str]]
    variables: Mapping[str, Mapping[str, pulumi.Input[str]]]  # environment -> name -> value
    secrets: Mapping[str, Mapping[str, pulumi.Input[str]]]


class GithubSettings(pulumi.ComponentResource):
    def __init__(self, name: str, args: GithubArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:bootstrap:GithubSettings", name, None, opts)
        settings = args.settings
        repo = settings.repository.split("/", 1)[1]
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        environments = {}
        for environment in sorted({*args.variables, *args.secrets}):
            protected = environment == "production"
            environments[environment] = github.RepositoryEnvironment(
                f"{name}-env-{environment}",
                repository=repo,
                environment=environment,
                # one approval for prod (deploy.yml's up-prod); only main deploys anywhere
                reviewers=[{"teams": settings.production_reviewers}] if protected else None,
                prevent_self_review=protected,
                deployment_branch_policy={
                    "protected_branches": True,
                    "custom_branch_policies": False,
                },
                opts=child,
            )
        env_opts = {
            e: pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[r]))
            for e, r in environments.items()
        }
        for variable, value in args.repository_variables.items():
            github.ActionsVariable(
                f"{name}-var-{variable}",
                repository=repo,
                variable_name=variable,
                value=value,
                opts=child,
            )
        for environment, values in args.variables.items():
            for variable, value in values.items():
                github.ActionsEnvironmentVariable(
                    f"{name}-{environment}-{variable}",
                    repository=repo,
                    environment=environment,
                    variable_name=variable,
                    value=value,
                    opts=env_opts[environment],
                )
        for environment, values in args.secrets.items():
            for secret, value in values.items():
                github.ActionsEnvironmentSecret(
                    f"{name}-{environment}-{secret}",
                    repository=repo,
                    environment=environment,
                    secret_name=secret,
                    plaintext_value=pulumi.Output.secret(value),
                    opts=env_opts[environment],
                )
        self.register_outputs({})
