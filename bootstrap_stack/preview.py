"""Offline preview of the bootstrap stack: render under mocks and run the policy pack.

python -m bootstrap_stack.preview
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pulumi

from bootstrap_stack.settings import ENVIRONMENT_CLOUDS, PROJECT, secret_config_keys
from stacktools.first_run import AZ_USER_LOGIN, ProviderMocks
from stacktools.program_preview import mandatory_problems, print_outcome
from stacktools.render import RenderedResource, render_program, stack_config

PROJECT_DIR = Path(__file__).resolve().parent
STACK = "main"


# What the administrator who runs `pulumi up --stack ORG/flowchat-bootstrap/main` has (the
# providers of bootstrap_stack/Pulumi.yaml): a user `az login`, an AWS admin profile, a GitHub
# token of a repository admin, a Pulumi access token of an organization admin. `run_as_admin`
# feeds exactly this to mocks that fail like the real providers (stacktools.first_run).
ADMIN_ENV = {
    "AWS_PROFILE": "(an AWS administrator profile)",
    "GITHUB_TOKEN": "(a token of a repository admin)",
    "PULUMI_ACCESS_TOKEN": "(a token of a Pulumi organization admin)",
}
ADMIN_TOOLS = frozenset({AZ_USER_LOGIN})
# what an operator sets before the first run (settings.OPERATOR_CONFIG), as the offline run's
# stand-in: a GitHub team id
OFFLINE_OPERATOR_CONFIG = {"productionReviewers": "[4242]"}


def run_as_admin(
    env: Mapping[str, str] = ADMIN_ENV, tools: frozenset[str] = ADMIN_TOOLS
) -> tuple[list[RenderedResource], list[str]]:
    """The bootstrap program under provider mocks that fail without their credentials:
    (resources, one line per provider that would fail)."""
    mocks = ProviderMocks(env, set(tools), cloud="azure")
    return render(mocks=mocks), mocks.problems


def render(
    overrides: dict[str, str] | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
    without: tuple[str, ...] = (),
) -> list[RenderedResource]:
    from bootstrap_stack.program import main

    config, secret = stack_config(STACK, project_dir=PROJECT_DIR)
    # secret config, never committed (`pulumi config set --secret KEY`): placeholders, except
    # the keys in `without` (a run that must fail naming them)
    given = [f"{PROJECT}:{k}" for k in secret_config_keys(ENVIRONMENT_CLOUDS) if k not in without]
    for key in given:
        config.setdefault(key, "[secret]")
    # operator config (set with `pulumi config set`, not committed): an offline stand-in
    for key, value in OFFLINE_OPERATOR_CONFIG.items():
        if key not in without:
            config.setdefault(f"{PROJECT}:{key}", value)
    config.update(overrides or {})
    return render_program(
        main,
        stack=STACK,
        config=config,
        secret_keys=[*secret, *given],
        project=PROJECT,
        mocks=mocks,
    )


def problems(resources: list[RenderedResource]) -> list[str]:
    return mandatory_problems(resources, stack=STACK, project=PROJECT)


def main() -> int:
    resources = render()
    return print_outcome(f"{PROJECT}/{STACK}", resources, problems(resources))


if __name__ == "__main__":
    sys.exit(main())
