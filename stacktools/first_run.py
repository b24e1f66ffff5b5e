"""The first `pulumi up` of a stack, offline: only what the workflow and ESC deliver.

`first_run(stack, step)` runs `__main__.py` under mocks whose providers fail at configure time the
way the real ones do (FAILS_WITHOUT below), with:
- the config the CLI would hand over: project defaults + `Pulumi.<stack>.yaml` + the
  `pulumiConfig` of every ESC environment the stack file attaches (`environment:`), read from its
  committed definition `deploy/esc/<project>-<env>.yaml`; nothing else, no placeholder;
- the environment and tools the workflow step has at that point (stacktools.workflow_model).
Then it checks what the engine and the cluster would find only after the fact: a resource left on
a disabled default provider, External Secrets unable to read the stack's entries (item 4 of
issue 9), Deployments that do not wait for the ExternalSecret to be Ready (item 7).

Every problem is a sentence in `FirstRun.problems`; an empty list is a first run that goes through.
"""

from __future__ import annotations

import functools
import json
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from app.contracts import EXTERNAL_SECRET
from stacks import esc
from stacks.config import ConfigError, load_config
from stacks.secrets import (
    AWS_TOKEN_AUDIENCE,
    AZURE_TOKEN_AUDIENCE,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_SECRETS_USER,
    SECRET_READ_ACTIONS,
    SERVICE_ACCOUNT,
    WAIT_FOR_ANNOTATION,
    WAIT_FOR_READY,
    service_account_subject,
)
from stacktools.render import (
    PROJECT,
    REPO_ROOT,
    RenderedResource,
    load_stack_file,
    mock_call,
    mock_outputs,
    render_program,
    stack_config,
)
from stacktools.workflow_model import KUBELOGIN, PULUMI_LOGIN, PulumiStep

# An administrator's interactive `az login` as a user (how the bootstrap and platform programs
# run): the azure-native provider then authenticates through the az CLI. A workflow's
# azure/login is a service principal, which the provider does not take from the CLI.
AZ_USER_LOGIN = "az-login-user"

ESC_DIR = Path("deploy") / "esc"
DISABLE_DEFAULTS_KEY = "pulumi:disable-default-providers"


def esc_definition_path(ref: str, project_dir: Path = REPO_ROOT) -> Path:
    """`flowchat/staging` (an `environment:` entry) -> deploy/esc/flowchat-staging.yaml."""
    return project_dir / ESC_DIR / f"{ref.replace('/', '-')}.yaml"


def _present(inputs: Mapping[str, Any], key: str) -> bool:
    value = inputs.get(key)
    return value not in (None, "", [], {})


def _either(inputs: Mapping[str, Any], key: str, env: Mapping[str, str], *names: str) -> bool:
    return _present(inputs, key) or any(env.get(n) for n in names)


def _kubernetes(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if _present(inputs, "kubeconfig"):
        return ""
    if not env.get("KUBECONFIG"):
        return (
            "no kubeconfig: neither the provider's kubeconfig nor KUBECONFIG is set (no cluster "
            "credentials step before this pulumi step); a runner has no ~/.kube/config"
        )
    if cloud == "azure" and KUBELOGIN not in tools:
        return "the AKS (Entra ID) kubeconfig needs kubelogin on PATH (azure/use-kubelogin)"
    return ""


def _grafana(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    missing = [
        what
        for what, key, var in (("url", "url", "GRAFANA_URL"), ("auth", "auth", "GRAFANA_AUTH"))
        if not _either(inputs, key, env, var)
    ]
    return f"grafana provider without {' and '.join(missing)}" if missing else ""


def _azure(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if AZ_USER_LOGIN in tools:  # an admin's own `az login`: the CLI's user credentials
        return ""
    if not _either(inputs, "subscriptionId", env, "ARM_SUBSCRIPTION_ID"):
        return "azure-native provider without a subscription (subscriptionId / ARM_SUBSCRIPTION_ID)"
    oidc = _present(inputs, "useOidc") or env.get("ARM_USE_OIDC", "").lower() == "true"
    client = _either(inputs, "clientId", env, "ARM_CLIENT_ID")
    tenant = _either(inputs, "tenantId", env, "ARM_TENANT_ID")
    token = _present(inputs, "oidcToken") or env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    if not (oidc and client and tenant and token):
        return (
            "azure-native provider has no credentials: OIDC needs ARM_USE_OIDC=true, "
            "ARM_CLIENT_ID, ARM_TENANT_ID and the job's id-token permission"
        )
    return ""


def _aws(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if not _either(inputs, "region", env, "AWS_REGION", "AWS_DEFAULT_REGION"):
        return "aws provider without a region (region / AWS_REGION)"
    if not (_either(inputs, "accessKey", env, "AWS_ACCESS_KEY_ID") or _profile(inputs, env)):
        return "aws provider has no credentials (aws-actions/configure-aws-credentials)"
    return ""


def _profile(inputs: Mapping, env: Mapping[str, str]) -> bool:
    """A named profile (an admin's `aws sso login` / ~/.aws), given to the provider or in env."""
    return _either(inputs, "profile", env, "AWS_PROFILE")


def _github(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if not _either(inputs, "token", env, "GITHUB_TOKEN"):
        return "github provider without a token (token / GITHUB_TOKEN): every write is a 401"
    if not _either(inputs, "owner", env, "GITHUB_OWNER"):
        return "github provider without an owner (owner / GITHUB_OWNER)"
    return ""


def _pulumiservice(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if not _either(inputs, "accessToken", env, "PULUMI_ACCESS_TOKEN"):
        return "pulumiservice provider without a token (accessToken / PULUMI_ACCESS_TOKEN)"
    return ""


def _pagerduty(inputs: Mapping, env: Mapping[str, str], tools: set[str], cloud: str) -> str:
    if not _either(inputs, "token", env, "PAGERDUTY_TOKEN"):
        return "pagerduty provider without a token (flowchat:pagerdutyToken / PAGERDUTY_TOKEN)"
    return ""


# What each real provider needs at configure time, and fails without.
FAILS_WITHOUT: dict[str, Callable[[Mapping, Mapping[str, str], set[str], str], str]] = {
    "pulumi:providers:kubernetes": _kubernetes,
    "pulumi:providers:grafana": _grafana,
    "pulumi:providers:azure-native": _azure,
    "pulumi:providers:aws": _aws,
    "pulumi:providers:pagerduty": _pagerduty,
    "pulumi:providers:github": _github,
    "pulumi:providers:pulumiservice": _pulumiservice,
}


class ProviderMocks(pulumi.runtime.Mocks):
    """Mocks whose provider resources fail like the real providers (problems collected)."""

    def __init__(self, env: Mapping[str, str], tools: set[str], cloud: str) -> None:
        self.env, self.tools, self.cloud = dict(env), set(tools), cloud
        self.problems: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        check = FAILS_WITHOUT.get(args.typ)
        if check:
            problem = check(args.inputs, self.env, self.tools, self.cloud)
            if problem:
                self.problems.append(f"{args.typ} {args.name}: {problem}")
        outputs = mock_outputs(args.typ, args.name, args.inputs)
        return outputs.pop("id", f"{args.name}-id"), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        return mock_call(args.token), []


@dataclass
class FirstRun:
    stack: str
    problems: list[str]
    resources: list[RenderedResource] = field(default_factory=list)


@functools.cache
def bootstrap_environments() -> dict[str, dict[str, Any]]:
    """The ESC environments the bootstrap program creates (PROJECT/NAME -> definition), from
    its offline run: what an `imports:` of a committed definition finds in Pulumi Cloud."""
    from bootstrap_stack.preview import render as render_bootstrap

    out: dict[str, dict[str, Any]] = {}
    for r in render_bootstrap():
        if r.type == "pulumiservice:index:Environment":
            text = (r.inputs.get("yaml") or {}).get("text", "")
            out[f"{r.inputs['project']}/{r.inputs['name']}"] = yaml.safe_load(text) or {}
    return out


def esc_delivery(
    stack_doc: Mapping[str, Any],
    project_dir: Path = REPO_ROOT,
    esc_docs: Mapping[str, Mapping[str, Any]] | None = None,
    imported: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(pulumiConfig, environmentVariables, problems) of the stack's attached ESC environments.

    A definition's `imports:` are looked up in `imported` (default: what the bootstrap program
    creates); every `${ids.NAME}` it reads must be there, or the environment does not open.
    Values made only of ids are delivered as they are; the others (secret manager reads) stand
    in as an opaque secret.
    """
    config: dict[str, str] = {}
    env: dict[str, str] = {}
    problems: list[str] = []
    if imported is None:
        imported = bootstrap_environments()
    for ref in stack_doc.get("environment") or []:
        doc = (esc_docs or {}).get(ref)
        path = esc_definition_path(ref, project_dir)
        if doc is None:
            if not path.exists():
                problems.append(f"ESC environment {ref} has no committed definition {path.name}")
                continue
            doc = yaml.safe_load(path.read_text()) or {}
        ids: dict[str, Any] = {}
        for name in doc.get("imports") or []:
            if name not in imported:
                problems.append(
                    f"ESC environment {ref} imports {name}, which bootstrap does not create"
                )
                continue
            ids.update(((imported[name].get("values") or {}).get(esc.IDS)) or {})
        unresolved = {n: p for n, p in esc.id_references(doc).items() if n not in ids}
        for name, paths in sorted(unresolved.items()):
            problems.append(
                f"ESC environment {ref} ({path.name}: {paths[0]}) reads ${{ids.{name}}}, which "
                f"no imported environment has: bootstrap output {esc.IDS}.{name} is missing"
            )
        values = doc.get("values") or {}
        for key, value in (values.get("pulumiConfig") or {}).items():
            text = str(value)
            if esc.is_id_only(text):
                try:
                    config[str(key)] = esc.resolve_ids(text, ids)
                except KeyError:
                    continue  # named above
            else:
                config[str(key)] = f"(ESC {ref}: {value})"
        for key, value in (values.get("environmentVariables") or {}).items():
            env[str(key)] = f"(ESC {ref}: {value})"
    return config, env, problems


def first_run(
    stack: str,
    step: PulumiStep,
    *,
    project_dir: Path = REPO_ROOT,
    stack_doc: Mapping[str, Any] | None = None,
    esc_docs: Mapping[str, Mapping[str, Any]] | None = None,
    imported: Mapping[str, Mapping[str, Any]] | None = None,
) -> FirstRun:
    """Run the program for `stack` with exactly what `step` and the ESC environment deliver."""
    problems = list(step.problems)
    doc = dict(stack_doc) if stack_doc is not None else load_stack_file(stack, project_dir)
    config, secret = stack_config(
        stack, project_dir=project_dir, offline_secrets=False, stack_doc=doc
    )
    env = dict(step.env)
    if PULUMI_LOGIN in step.tools:  # ESC opens only for a logged-in CLI
        esc_config, esc_env, esc_problems = esc_delivery(doc, project_dir, esc_docs, imported)
        problems += esc_problems
        config.update(esc_config)
        secret = sorted({*secret, *(k for k, v in esc_config.items() if v.startswith("(ESC "))})
        env.update(esc_env)
    mocks = ProviderMocks(env, step.tools, step.cloud)
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    main = project_dir / "__main__.py"
    config_error: list[str] = []

    def program() -> None:
        try:
            load_config()
        except ConfigError as exc:
            config_error.extend(exc.problems)
            return
        runpy.run_path(str(main), run_name="__main__")

    invokes: list[tuple[str, str]] = []
    resources = render_program(
        program, stack=stack, config=config, secret_keys=secret, mocks=mocks, invokes=invokes
    )
    problems += [f"config: {p}" for p in config_error]
    problems += mocks.problems
    if not config_error:
        disabled = _disabled_defaults(config)
        problems += default_provider_problems(resources, invokes, disabled)
        problems += secret_access_problems(resources, load_cloud(config), stack)
        problems += rollout_wait_problems(resources)
    return FirstRun(stack, problems, resources)


def load_cloud(config: Mapping[str, str]) -> str:
    return config.get(f"{PROJECT}:cloud", "azure")


def _disabled_defaults(config: Mapping[str, str]) -> set[str]:
    raw = config.get(DISABLE_DEFAULTS_KEY, "[]")
    try:
        return set(json.loads(raw))
    except json.JSONDecodeError:
        return {raw}


def _package(token: str) -> str:
    return token.split(":", 1)[0]


def default_provider_problems(
    resources: list[RenderedResource], invokes: list[tuple[str, str]], disabled: set[str]
) -> list[str]:
    """Resources or invokes left on a default provider: fail where it is disabled, and otherwise
    fall back to ambient state (every package this program uses must be explicit)."""
    problems = []
    for r in resources:
        if r.custom and not r.type.startswith("pulumi:providers:") and not r.provider:
            package = _package(r.type)
            why = "disabled" if package in disabled or "*" in disabled else "not disabled"
            problems.append(f"{r.type} {r.name} uses the default {package} provider ({why})")
    for token, provider in invokes:
        if not provider:
            problems.append(f"invoke {token} uses the default {_package(token)} provider")
    return problems


def _k8s(resources: list[RenderedResource], kind: str) -> list[RenderedResource]:
    return [
        r for r in resources if r.type.startswith("kubernetes:") and r.inputs.get("kind") == kind
    ]


def _one(resources: list[RenderedResource], typ: str) -> list[RenderedResource]:
    return [r for r in resources if r.type == typ]


def secret_access_problems(resources: list[RenderedResource], cloud: str, stack: str) -> list[str]:
    """Can External Secrets read the entries, and rotation write them? (issue 9, item 4)"""
    stores = _k8s(resources, "SecretStore")
    accounts = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]
        for r in _k8s(resources, "ServiceAccount")
    }
    if len(stores) != 1:
        return [f"expected one SecretStore, found {len(stores)}"]
    store = stores[0].inputs
    namespace = store["metadata"]["namespace"]
    subject = service_account_subject(namespace)
    provider = store["spec"]["provider"]
    if cloud == "azure":
        return _azure_access(resources, provider.get("azurekv") or {}, accounts, subject)
    return _aws_access(resources, provider.get("aws") or {}, accounts, subject)


def _azure_access(
    resources: list[RenderedResource], kv: Mapping, accounts: Mapping, subject: str
) -> list[str]:
    if kv.get("authType") != "WorkloadIdentity":
        return [f"SecretStore authenticates as {kv.get('authType')!r}: no identity has a grant"]
    sa = accounts.get((kv.get("serviceAccountRef") or {}).get("name"), {})
    client_id = (sa.get("annotations") or {}).get("azure.workload.identity/client-id")
    if not client_id:
        return ["External Secrets' service account has no workload identity client id"]
    identities = [
        r
        for r in _one(resources, "azure-native:managedidentity:UserAssignedIdentity")
        if mock_outputs(r.type, r.name, r.inputs)["clientId"] == client_id
    ]
    if not identities:
        return [f"no identity in the stack has client id {client_id}: nothing can be verified"]
    identity = identities[0]
    principal = mock_outputs(identity.type, identity.name, identity.inputs)["principalId"]
    problems = []
    federated = [
        r.inputs
        for r in _one(resources, "azure-native:managedidentity:FederatedIdentityCredential")
        if r.inputs.get("subject") == subject
        and AZURE_TOKEN_AUDIENCE in (r.inputs.get("audiences") or [])
        and r.inputs.get("issuer")
    ]
    if not federated:
        problems.append(f"no federated credential trusts {subject} (with an issuer): token 401")
    assignments = _one(resources, "azure-native:authorization:RoleAssignment")
    vault_ids = {
        mock_outputs(r.type, r.name, r.inputs)["id"]
        for r in _one(resources, "azure-native:keyvault:Vault")
    }

    def granted(role: str, who: str | None = None) -> bool:
        return any(
            str(a.inputs.get("roleDefinitionId", "")).endswith(f"/roleDefinitions/{role}")
            and (who is None or a.inputs.get("principalId") == who)
            and (not vault_ids or a.inputs.get("scope") in vault_ids)
            for a in assignments
        )

    if not granted(KEY_VAULT_SECRETS_USER, principal):
        problems.append("External Secrets' identity has no Key Vault Secrets User grant: 403")
    if not granted(KEY_VAULT_SECRETS_OFFICER):
        problems.append("no identity may write the vault (Key Vault Secrets Officer): rotation 403")
    return problems


def _aws_access(
    resources: list[RenderedResource], store: Mapping, accounts: Mapping, subject: str
) -> list[str]:
    ref = ((store.get("auth") or {}).get("jwt") or {}).get("serviceAccountRef") or {}
    sa = accounts.get(ref.get("name"), {})
    role_arn = (sa.get("annotations") or {}).get("eks.amazonaws.com/role-arn")
    if not ref or not role_arn:
        return ["SecretStore has no IRSA identity (jwt serviceAccountRef + role-arn annotation)"]
    roles = [
        r
        for r in _one(resources, "aws:iam/role:Role")
        if mock_outputs(r.type, r.name, r.inputs)["arn"] == role_arn
    ]
    if not roles:
        return [f"no IAM role in the stack has ARN {role_arn}: nothing can be verified"]
    role = roles[0]
    problems = []
    trust = json.loads(role.inputs.get("assumeRolePolicy") or "{}")
    trusted = False
    for statement in trust.get("Statement", []):
        federated = (statement.get("Principal") or {}).get("Federated")
        equals = (statement.get("Condition") or {}).get("StringEquals") or {}
        subs = [v for k, v in equals.items() if k.endswith(":sub")]
        auds = [v for k, v in equals.items() if k.endswith(":aud")]
        if federated and subs == [subject] and auds == [AWS_TOKEN_AUDIENCE]:
            trusted = True
    if not trusted:
        problems.append(f"the IRSA role does not trust exactly {subject} via an OIDC provider")
    arns = sorted(
        mock_outputs(r.type, r.name, r.inputs)["arn"]
        for r in _one(resources, "aws:secretsmanager/secret:Secret")
    )
    role_id = f"{role.name}-id"
    granted = False
    for policy in _one(resources, "aws:iam/rolePolicy:RolePolicy"):
        if policy.inputs.get("role") != role_id:
            continue
        for statement in json.loads(policy.inputs.get("policy") or "{}").get("Statement", []):
            actions = set(statement.get("Action") or [])
            if set(SECRET_READ_ACTIONS) <= actions and sorted(statement.get("Resource")) == arns:
                granted = True
    if not granted:
        problems.append("the IRSA role may not read exactly the stack's secrets: 403")
    externals = _k8s(resources, "ExternalSecret")
    wanted = {d["remoteRef"]["key"] for e in externals for d in e.inputs["spec"]["data"]}
    names = {r.inputs.get("name") for r in _one(resources, "aws:secretsmanager/secret:Secret")}
    if wanted - names:
        problems.append(f"ExternalSecret reads entries the stack does not create: {wanted - names}")
    return problems


def rollout_wait_problems(resources: list[RenderedResource]) -> list[str]:
    """Deployments roll only after the ExternalSecret is Ready (issue 9, item 7)."""
    externals = [
        r
        for r in _k8s(resources, "ExternalSecret")
        if r.inputs["metadata"]["name"] == EXTERNAL_SECRET
    ]
    if len(externals) != 1:
        return [f"expected one ExternalSecret {EXTERNAL_SECRET}, found {len(externals)}"]
    external = externals[0]
    problems = []
    annotations = external.inputs["metadata"].get("annotations") or {}
    if WAIT_FOR_READY not in str(annotations.get(WAIT_FOR_ANNOTATION, "")):
        problems.append(
            f"ExternalSecret lacks {WAIT_FOR_ANNOTATION}: {WAIT_FOR_READY}; accepted is not synced"
        )
    for deployment in _k8s(resources, "Deployment"):
        if external.urn not in deployment.dependencies:
            name = deployment.inputs["metadata"]["name"]
            problems.append(f"Deployment {name} does not wait for the ExternalSecret")
    return problems


__all__ = ["FAILS_WITHOUT", "SERVICE_ACCOUNT", "FirstRun", "esc_definition_path", "first_run"]
