"""What a GitHub Actions job has delivered by the time a `pulumi/actions` step runs.

The facts about each action live in ACTION_FACTS (one place): which environment variables it
exports to later steps, which tools it puts on PATH, what it needs first (an OIDC token, an Azure
login). `pulumi_steps(workflow)` walks every job step by step, skipping steps whose `if:` selects
the other cloud, and returns for every `pulumi/actions` step the environment and tools available
to it, plus the contract problems found on the way (e.g. no Pulumi Cloud OIDC login first).

Environment values are kept as written (`${{ vars.X }}` expressions count as set: the repository
variables are part of the documented setup); only presence matters to the providers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PULUMI_ACTION = "pulumi/actions"
ID_TOKEN_ENV = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
# tools (not env) that steps put on PATH or leave logged in
AZ_LOGIN = "az-login"
KUBELOGIN = "kubelogin"
PULUMI_LOGIN = "pulumi-cloud-login"


@dataclass(frozen=True)
class ActionFact:
    """What one action delivers to the steps after it."""

    env: tuple[str, ...] = ()  # exported environment variables
    tools: tuple[str, ...] = ()  # tools / logins available afterwards
    env_from_inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    needs_oidc: bool = False  # needs `id-token: write` (else it fails and delivers nothing)
    needs_tools: tuple[str, ...] = ()


ACTION_FACTS: dict[str, ActionFact] = {
    # Pulumi Cloud login by OIDC: exports PULUMI_ACCESS_TOKEN for later steps.
    "pulumi/auth-actions": ActionFact(
        env=("PULUMI_ACCESS_TOKEN",), tools=(PULUMI_LOGIN,), needs_oidc=True
    ),
    # az CLI login by OIDC; the ARM_* variables the azure-native provider reads come from the
    # job's `env:` (ARM_USE_OIDC, ARM_CLIENT_ID, ARM_TENANT_ID, ARM_SUBSCRIPTION_ID).
    "azure/login": ActionFact(tools=(AZ_LOGIN,), needs_oidc=True),
    # puts kubelogin on PATH (AKS with Entra ID: the kubeconfig's exec plugin)
    "azure/use-kubelogin": ActionFact(tools=(KUBELOGIN,)),
    # writes a kubeconfig for the cluster and exports KUBECONFIG
    "azure/aks-set-context": ActionFact(env=("KUBECONFIG",), needs_tools=(AZ_LOGIN,)),
    # exports AWS credentials, and the region when `aws-region` is given
    "aws-actions/configure-aws-credentials": ActionFact(
        env=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
        env_from_inputs={"aws-region": ("AWS_REGION", "AWS_DEFAULT_REGION")},
        needs_oidc=True,
    ),
}
_GITHUB_ENV_WRITE = re.compile(r"""\b([A-Z_][A-Z0-9_]*)=[^\n]*>>\s*["']?\$\{?GITHUB_ENV\}?""")
_KUBECONFIG_WRITERS = ("aws eks update-kubeconfig", "az aks get-credentials")


@dataclass
class PulumiStep:
    """One `pulumi/actions` step and what is available to it."""

    workflow: str
    job: str
    index: int  # position in the job's steps
    command: str  # up | preview | refresh ...
    stacks: tuple[str, ...]
    cloud: str
    env: dict[str, str]
    tools: set[str]
    problems: list[str]

    @property
    def label(self) -> str:
        return f"{self.workflow}:{self.job}:step{self.index}({self.command})"


def action_name(uses: str) -> str:
    """`owner/repo@ref` (or `owner/repo/path@ref`) -> `owner/repo`."""
    return "/".join(uses.split("@", 1)[0].split("/")[:2])


def _step_runs_for(step: Mapping[str, Any], cloud: str) -> bool:
    cond = str(step.get("if", ""))
    other = {"azure": "aws", "aws": "azure"}[cloud]
    return not re.search(rf"==\s*'{other}'", cond)


def _has_id_token(workflow: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    perms = job.get("permissions", workflow.get("permissions"))
    if perms == "write-all":
        return True
    return isinstance(perms, Mapping) and perms.get("id-token") == "write"


def _stacks_of(step: Mapping[str, Any], job: Mapping[str, Any], known: Iterable[str]) -> tuple:
    name = str((step.get("with") or {}).get("stack-name", ""))
    literal = tuple(s for s in known if re.search(rf"(^|/){s}$", name))
    if literal:
        return literal
    matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("stack")
    if "matrix.stack" in name and isinstance(matrix, list):
        return tuple(str(s) for s in matrix if s in known)
    return tuple(known)


def pulumi_steps(path: Path, stack_clouds: Mapping[str, str]) -> list[PulumiStep]:
    """Every `pulumi/actions` step of the workflow at `path`, once per stack it may target."""
    workflow = yaml.safe_load(path.read_text()) or {}
    found: list[PulumiStep] = []
    for job_id, job in (workflow.get("jobs") or {}).items():
        steps = job.get("steps") or []
        for index, step in enumerate(steps):
            if action_name(str(step.get("uses", ""))) != PULUMI_ACTION:
                continue
            for stack in _stacks_of(step, job, stack_clouds):
                found.append(
                    _walk(path.name, job_id, workflow, job, index, stack, stack_clouds[stack])
                )
    return found


def _walk(
    name: str,
    job_id: str,
    workflow: Mapping[str, Any],
    job: Mapping[str, Any],
    index: int,
    stack: str,
    cloud: str,
) -> PulumiStep:
    env: dict[str, str] = {str(k): str(v) for k, v in (workflow.get("env") or {}).items()}
    env.update({str(k): str(v) for k, v in (job.get("env") or {}).items()})
    oidc = _has_id_token(workflow, job)
    if oidc:
        env.update({k: "(runner)" for k in ID_TOKEN_ENV})
    tools: set[str] = set()
    problems: list[str] = []
    steps = job.get("steps") or []
    for step in steps[:index]:
        if not _step_runs_for(step, cloud):
            continue
        uses = str(step.get("uses", ""))
        if uses:
            fact = ACTION_FACTS.get(action_name(uses))
            if fact is None:
                continue
            label = action_name(uses)
            if fact.needs_oidc and not oidc:
                problems.append(f"{label} needs `id-token: write`; it fails without it")
                continue
            missing = [t for t in fact.needs_tools if t not in tools]
            if missing:
                problems.append(f"{label} runs before {', '.join(missing)} is available")
                continue
            env.update({k: f"(from {label})" for k in fact.env})
            inputs = step.get("with") or {}
            for key, names in fact.env_from_inputs.items():
                if inputs.get(key):
                    env.update({n: str(inputs[key]) for n in names})
            tools.update(fact.tools)
        script = str(step.get("run", ""))
        if script:
            writes_kubeconfig = any(w in script for w in _KUBECONFIG_WRITERS)
            for var in _GITHUB_ENV_WRITE.findall(script):
                if var == "KUBECONFIG" and not writes_kubeconfig:
                    continue
                if var == "KUBECONFIG" and "aws eks" in script and "AWS_ACCESS_KEY_ID" not in env:
                    problems.append("aws eks update-kubeconfig runs without AWS credentials")
                    continue
                env[var] = "(from $GITHUB_ENV)"
    pulumi_step = steps[index]
    env.update({str(k): str(v) for k, v in (pulumi_step.get("env") or {}).items()})
    command = str((pulumi_step.get("with") or {}).get("command", ""))
    if PULUMI_LOGIN not in tools:
        problems.append(
            "no pulumi/auth-actions step (Pulumi Cloud OIDC login) before the pulumi step: "
            "the stack and its ESC environment cannot be opened"
        )
    return PulumiStep(name, job_id, index, command, (stack,), cloud, env, tools, problems)
