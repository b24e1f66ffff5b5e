"""bootstrap_stack: offline preview, least privilege, and the workflows fed only by its outputs.

The deploy workflow's every `vars.X` and `secrets.X` (per job, in the job's GitHub environment)
must be set by a resource of the bootstrap program; dropping any one of those resources leaves a
reference unset and the test names it (issue 19, "first run reads only what bootstrap and
platform produce").
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pulumi
import pytest
import yaml

from bootstrap_stack import aws as aws_trust
from bootstrap_stack import trust
from bootstrap_stack.preview import ADMIN_ENV, problems, render, run_as_admin
from bootstrap_stack.settings import ENVIRONMENT_CLOUDS, secret_config_keys
from stacks import esc, placeholders
from stacktools.render import RenderedResource

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN_SECRETS = {"GITHUB_TOKEN"}
GITHUB_TYPES = {
    "github:index/actionsVariable:ActionsVariable": "repo-var",
    "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable": "env-var",
    "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret": "env-secret",
}


@pytest.fixture(scope="module")
def resources() -> list[RenderedResource]:
    return render()


def _of(resources: list[RenderedResource], suffix: str) -> list[dict]:
    return [r.inputs for r in resources if r.type.endswith(suffix)]


def test_the_offline_preview_passes_the_policy_pack(resources: list) -> None:
    assert problems(resources) == []


def test_the_deploy_identity_cannot_grant_itself_owner(resources: list) -> None:
    roles = [str(a["roleDefinitionId"]) for a in _of(resources, ":RoleAssignment")]
    uaa = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"  # User Access Administrator
    assert not any(r.endswith(uaa) for r in roles)
    (rbac,) = [
        a
        for a in _of(resources, ":RoleAssignment")
        if str(a["roleDefinitionId"]).endswith(trust.RBAC_ADMINISTRATOR)
    ]
    condition = rbac["condition"]
    assert rbac["conditionVersion"] == "2.0"
    assert set(re.findall(r"[0-9a-f-]{36}", condition)) == set(trust.ASSIGNABLE_BY_DEPLOY)
    # and the deploy identity may use the cluster's data plane (kubelogin is not Forbidden)
    assert any(r.endswith(trust.AKS_RBAC_WRITER) for r in roles)


def test_federated_credentials_trust_exactly_the_workflow_and_esc_subjects(resources: list) -> None:
    creds = {c["subject"]: c for c in _of(resources, ":FederatedIdentityCredential")}
    assert set(creds) == {
        "repo:ciandt/flowchat:environment:staging",
        # what ESC presents with subjectAttributes [currentEnvironment.name] (Pulumi ESC docs,
        # "Custom token claim"); the default subject is not what `pulumi up` sends (#14509)
        "pulumi:environments:pulumi.organization.login:flowchat:"
        "currentEnvironment.name:flowchat/staging",
    }
    issuers = {c["issuer"] for c in creds.values()}
    assert issuers == {trust.GITHUB_ISSUER, trust.PULUMI_ISSUER}
    esc_credential = creds[next(s for s in creds if s.startswith("pulumi:"))]
    assert esc_credential["audiences"] == ["azure:flowchat"]  # ESC's azure-login audience


@pytest.mark.parametrize(("environment", "cloud"), sorted(ENVIRONMENT_CLOUDS.items()))
def test_bootstrap_trusts_the_subject_and_audience_the_esc_definition_presents(
    resources: list, environment: str, cloud: str
) -> None:
    """The subject ESC presents, built from the committed file by the documented rule (prefix
    plus `:attribute:value` per subjectAttributes entry), is the one bootstrap's trust names."""
    committed = esc.load_definition(environment)
    attributes = esc.subject_attributes(committed, cloud)
    assert attributes == ["currentEnvironment.name"]
    presented = (
        "pulumi:environments:pulumi.organization.login:flowchat"
        f":currentEnvironment.name:flowchat/{environment}"
    )
    if cloud == "azure":
        trusted = {
            (c["subject"], tuple(c["audiences"]))
            for c in _of(resources, ":FederatedIdentityCredential")
            if c["issuer"] == trust.PULUMI_ISSUER
        }
    else:
        (esc_role,) = [
            r for r in _of(resources, "iam/role:Role") if r["name"] == "flowchat-prod-esc"
        ]
        condition = json.loads(esc_role["assumeRolePolicy"])["Statement"][0]["Condition"]
        host = trust.PULUMI_ISSUER.removeprefix("https://")
        trusted = {
            (condition["StringEquals"][f"{host}:sub"], (condition["StringEquals"][f"{host}:aud"],))
        }
        (provider,) = [
            p for p in _of(resources, ":OpenIdConnectProvider") if p["url"] == trust.PULUMI_ISSUER
        ]
        assert provider["clientIdLists"] == ["aws:flowchat"]
    assert trusted == {(presented, (f"{cloud}:flowchat",))}


def test_a_definition_without_subject_attributes_is_refused() -> None:
    """Without subjectAttributes a stack's `pulumi up` presents `...:env:<yaml>`: no trust can
    name the environment, so bootstrap refuses to build one."""
    doc = esc.load_definition("staging")
    del doc["values"]["azure"]["login"]["fn::open::azure-login"]["subjectAttributes"]
    with pytest.raises(ValueError, match="subjectAttributes"):
        esc.oidc_subject(doc, "azure", "flowchat", "staging")


def test_aws_roles_trust_one_environment_each_and_have_an_eks_access_entry(resources: list) -> None:
    roles = {r["name"]: json.loads(r["assumeRolePolicy"]) for r in _of(resources, "iam/role:Role")}
    subjects = {
        name: list(policy["Statement"][0]["Condition"]["StringEquals"].values())
        for name, policy in roles.items()
    }
    assert "repo:ciandt/flowchat:environment:production" in subjects["flowchat-prod-deploy"]
    assert (
        "repo:ciandt/flowchat:environment:production-readonly" in subjects["flowchat-prod-readonly"]
    )
    assert len(_of(resources, "eks/accessEntry:AccessEntry")) == 2
    for policy in _of(resources, "iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy["policy"])["Statement"]:
            assert statement["Resource"] != "*", statement  # scoped permission policies


def test_pulumi_cloud_trusts_only_this_repository(resources: list) -> None:
    (issuer,) = _of(resources, ":OidcIssuer")
    assert issuer["url"] == trust.GITHUB_ISSUER
    (policy,) = issuer["policies"]
    assert policy["rules"]["repository"] == "ciandt/flowchat"


def _environments(resources: list[RenderedResource]) -> dict[str, dict]:
    return {
        f"{r.inputs['project']}/{r.inputs['name']}": yaml.safe_load(r.inputs["yaml"]["text"])
        for r in resources
        if r.type == "pulumiservice:index:Environment"
    }


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_committed_esc_definitions_hold_no_placeholder_and_read_ids_from_bootstrap(
    resources: list, environment: str
) -> None:
    """The committed file is deployed as it is; the ids it reads come from bootstrap's ids
    environment, which it imports (issue 19: no placeholder ids copied by hand)."""
    committed = esc.load_definition(environment)
    assert list(placeholders.find(committed)) == []
    assert committed["imports"] == [esc.ids_environment(environment)]
    environments = _environments(resources)
    assert environments[f"flowchat/{environment}"] == committed  # deployed verbatim
    ids = environments[esc.ids_environment(environment)]["values"][esc.IDS]
    assert set(esc.id_references(committed)) == set(ids)  # exactly what the definition reads
    assert all(v not in (None, "") for v in ids.values()), ids
    assert list(placeholders.find(ids)) == []


# --- the workflows read only what bootstrap produces -------------------------------------------
WORKFLOWS = ROOT / ".github" / "workflows"
# Read by workflows but deliberately not bootstrap outputs, each with its reason:
NOT_FROM_BOOTSTRAP = {
    # the NEW Flow credentials and admin token an operator puts in before dispatching
    # rotate-flow-credentials.yml (its header); a bootstrap value would be the old one
    ("secrets", "FLOW_AGENT"): "rotation input",
    ("secrets", "FLOW_TENANT"): "rotation input",
    ("secrets", "FLOW_AGENT_SECRET"): "rotation input",
    ("secrets", "ADMIN_TOKEN"): "rotation input",
    # opt-in: the jobs it gates (preview.yml's live previews) are skipped until a team turns it
    # on with identities a pull request may use; those jobs are left out below
    ("vars", "PULUMI_PREVIEW_ENABLED"): "opt-in gate",
}
OPT_IN_GATES = ("PULUMI_PREVIEW_ENABLED",)


def _job_environments(job: dict) -> list[str | None]:
    """The GitHub environments a job may run in: its literal `environment:`, or each known
    environment named in its expression (`matrix.stack == 'prod' && 'production' || ...`)."""
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment.get("name")
    if environment is None:
        return [None]
    known = set(trust.GITHUB_ENVIRONMENTS.values())
    if "${{" not in environment:
        return [environment]
    named = [e for e in re.findall(r"'([^']+)'", environment) if e in known]
    assert named, environment
    return named


def workflow_refs() -> list[tuple[str, str | None, str, str]]:
    """(workflow/job, its GitHub environment, vars|secrets, NAME) for every reference in every
    workflow (deploy, preview, drift, rotation, smoke, evaluation, load test...)."""
    refs = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        top = json.dumps(workflow.get("env") or {})
        for name, job in workflow["jobs"].items():
            if any(f"vars.{gate} == 'true'" in str(job.get("if", "")) for gate in OPT_IN_GATES):
                continue  # skipped: bootstrap does not turn the gate on
            text = top + json.dumps(job)
            found = set(re.findall(r"\b(vars|secrets)\.([A-Za-z0-9_]+)", text))
            for environment in _job_environments(job):
                for kind, ref in sorted(found):
                    if kind == "secrets" and ref in BUILT_IN_SECRETS:
                        continue
                    if (kind, ref) in NOT_FROM_BOOTSTRAP:
                        continue
                    refs.append((f"{path.name}/{name}", environment, kind, ref))
    return refs


def delivered(resources: list[RenderedResource]) -> dict[str, set[tuple[str | None, str]]]:
    out: dict[str, set[tuple[str | None, str]]] = {"vars": set(), "secrets": set()}
    for r in resources:
        kind = GITHUB_TYPES.get(r.type)
        if kind == "repo-var":
            out["vars"].add((None, r.inputs["variableName"]))
        elif kind == "env-var":
            out["vars"].add((r.inputs["environment"], r.inputs["variableName"]))
        elif kind == "env-secret":
            out["secrets"].add((r.inputs["environment"], r.inputs["secretName"]))
    return out


def unset_refs(resources: list[RenderedResource]) -> list[str]:
    given = delivered(resources)
    return [
        f"{job}: {kind}.{name} (environment {env}) is set by no bootstrap output"
        for job, env, kind, name in workflow_refs()
        if (env, name) not in given[kind] and (None, name) not in given[kind]
    ]


def test_every_workflow_reference_is_a_bootstrap_output(resources: list) -> None:
    refs = workflow_refs()
    read_by = {r[0].split("/")[0] for r in refs}
    assert {"deploy.yml", "drift.yml", "rotate-flow-credentials.yml"} <= read_by
    assert {"smoke.yml", "evaluate.yml", "load-test.yml"} <= read_by
    assert unset_refs(resources) == []


def test_the_exceptions_are_still_read() -> None:
    """An entry of NOT_FROM_BOOTSTRAP that no workflow reads any more must go."""
    text = "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    for kind, name in NOT_FROM_BOOTSTRAP:
        assert f"{kind}.{name}" in text


def _github_resources() -> list[str]:
    return sorted(r.name for r in render() if r.type in GITHUB_TYPES)


@pytest.mark.parametrize("name", _github_resources())
def test_dropping_any_bootstrap_output_fails_naming_it(resources: list, name: str) -> None:
    (dropped,) = [r for r in resources if r.name == name]
    rest = [r for r in resources if r.name != name]
    missing = unset_refs(rest)
    label = dropped.inputs.get("variableName") or dropped.inputs.get("secretName")
    assert missing and all(f".{label} " in m for m in missing), (name, missing)


# --- the providers fail like the real ones without the administrator's credentials ------------
def test_the_administrators_credentials_are_enough() -> None:
    resources, problems = run_as_admin()
    assert resources and problems == []


@pytest.mark.parametrize(
    ("dropped", "provider"),
    [
        ("GITHUB_TOKEN", "pulumi:providers:github"),
        ("PULUMI_ACCESS_TOKEN", "pulumi:providers:pulumiservice"),
        ("AWS_PROFILE", "pulumi:providers:aws"),
    ],
)
def test_each_provider_fails_without_its_token(dropped: str, provider: str) -> None:
    env = {k: v for k, v in ADMIN_ENV.items() if k != dropped}
    _, problems = run_as_admin(env=env)
    assert [p for p in problems if p.startswith(f"{provider} ")], problems
    assert all(p.startswith(f"{provider} ") for p in problems), problems


def test_azure_fails_without_a_login() -> None:
    _, problems = run_as_admin(tools=frozenset())
    assert any(p.startswith("pulumi:providers:azure-native ") for p in problems), problems


# --- the deploy-time secrets ESC reads are written by bootstrap ---------------------------------
SECRET_TYPES = {
    "azure": ("azure-native:keyvault:Secret", "secretName"),
    "aws": ("aws:secretsmanager/secret:Secret", "name"),
}


@pytest.mark.parametrize(("environment", "cloud"), list(ENVIRONMENT_CLOUDS.items()))
def test_bootstrap_writes_exactly_the_secrets_each_esc_definition_reads(
    resources: list, environment: str, cloud: str
) -> None:
    typ, field = SECRET_TYPES[cloud]
    written = {r.inputs[field] for r in resources if r.type == typ}
    committed = esc.load_definition(environment)["values"][cloud]["secrets"]
    block = committed[f"fn::open::{cloud}-secrets"]["get"]
    read = {entry["name" if cloud == "azure" else "secretId"] for entry in block.values()}
    assert read and written == read
    if cloud == "aws":  # every one has a value, and ESC's role may read it
        versions = [r for r in resources if r.type.endswith("secretVersion:SecretVersion")]
        assert len(versions) == len(read)
        assert all(fnmatch.fnmatchcase(name, aws_trust.ESC_SECRETS) for name in read)
    else:
        vaults = {r.inputs["vaultName"] for r in resources if r.type.endswith(":Vault")}
        assert {r.inputs["vaultName"] for r in resources if r.type == typ} == vaults
    valued = [r for r in resources if r.type.endswith(("keyvault:Secret", ":SecretVersion"))]
    assert valued and all("[secret]" in json.dumps(r.inputs) for r in valued)  # never plain


@pytest.mark.parametrize("key", secret_config_keys(ENVIRONMENT_CLOUDS))
def test_missing_secret_config_fails_the_bootstrap_naming_the_key(key: str) -> None:
    with pytest.raises(pulumi.config.ConfigMissingError, match=f"flowchat-bootstrap:{key}"):
        render(without=(key,))


def test_the_environments_serve_the_stacks_on_their_clouds() -> None:
    for environment, cloud in ENVIRONMENT_CLOUDS.items():
        stack = yaml.safe_load((ROOT / f"Pulumi.{environment}.yaml").read_text())
        assert stack["config"]["flowchat:cloud"] == cloud
        assert stack["environment"] == [f"flowchat/{environment}"]


# IAM write actions (a policy action "iam:*" or "iam:Put*" also matches them)
IAM_WRITES = (
    "iam:Attach*",
    "iam:Create*",
    "iam:Delete*",
    "iam:Put*",
    "iam:Update*",
    "iam:Tag*",
    "iam:PassRole",
)


def _allows(statement: dict, action: str, resource: str) -> bool:
    actions = (
        statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    )
    resources = (
        statement["Resource"]
        if isinstance(statement["Resource"], list)
        else [statement["Resource"]]
    )
    return (
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) or fnmatch.fnmatchcase(a, action) for a in actions)
        and any(fnmatch.fnmatchcase(resource, r) for r in resources)
    )


def test_the_aws_deploy_role_cannot_modify_its_own_or_any_bootstrap_role(resources: list) -> None:
    """The deploy role may write only the IAM role the service stack creates (External
    Secrets' IRSA role); an IAM write on its own role would let it grant itself `*:*`."""
    from stacks.secrets import external_secrets_role_name

    account = "210987654321"  # stacktools.render.MOCK_AWS_ACCOUNT
    roles = {r.inputs["name"]: r for r in resources if r.type == "aws:iam/role:Role"}
    (deploy_policy,) = [  # aws.py: RolePolicy f"{name}-deploy-policy" on flowchat-prod-deploy
        r.inputs["policy"]
        for r in resources
        if r.type == "aws:iam/rolePolicy:RolePolicy" and r.name.endswith("-deploy-policy")
    ]
    deploy_statements = json.loads(deploy_policy)["Statement"]
    assert deploy_statements
    for name in roles:  # flowchat-prod-deploy, -readonly, -esc
        arn = f"arn:aws:iam::{account}:role/{name}"
        assert not [
            (s["Action"], a) for s in deploy_statements for a in IAM_WRITES if _allows(s, a, arn)
        ], name
    service_role = f"arn:aws:iam::{account}:role/{external_secrets_role_name('prod')}"
    assert _allows(
        next(s for s in deploy_statements if "iam:PutRolePolicy" in s["Action"]),
        "iam:PutRolePolicy",
        service_role,
    )


def test_production_requires_a_reviewer(resources: list) -> None:
    (production,) = [
        r.inputs
        for r in resources
        if r.type == "github:index/repositoryEnvironment:RepositoryEnvironment"
        and r.inputs["environment"] == "production"
    ]
    (reviewers,) = production["reviewers"]
    assert reviewers["teams"], production  # one approval that someone can give


def test_bootstrap_refuses_to_run_without_production_reviewers() -> None:
    with pytest.raises(Exception, match=r"productionReviewers is not set: pulumi config set"):
        render(without=("productionReviewers",))


def test_an_empty_reviewer_list_is_refused() -> None:
    from bootstrap_stack.settings import parse_settings

    with pytest.raises(ValueError, match="productionReviewers"):
        parse_settings(
            {
                "organization": "flowchat",
                "repository": "ciandt/flowchat",
                "imageRepository": "ghcr.io/ciandt/flowchat",
                "productionReviewers": [],
                "azure": {"resourceGroup": "g", "clusterName": "c", "deployVault": "v"},
                "aws": {"clusterName": "c"},
            }
        )


def test_the_aws_deploy_role_writes_the_service_role_only_inside_the_boundary(
    resources: list,
) -> None:
    """Issue 19 item 5: PutRolePolicy on the service's role would let the deploy role give that
    role any right and then trust and assume it. Every write that changes the role's rights
    needs bootstrap's boundary on the role, the boundary grants only the secret reads, and the
    boundary cannot be removed."""
    from stacks.secrets import SECRET_READ_ACTIONS, external_secrets_role_name

    account = "210987654321"  # stacktools.render.MOCK_AWS_ACCOUNT
    (boundary,) = [r.inputs for r in resources if r.type == "aws:iam/policy:Policy"]
    boundary_arn = f"arn:aws:iam::{account}:policy/{boundary['name']}"
    secrets = f"arn:aws:secretsmanager:eu-west-1:{account}:secret:flowchat/prod/"
    for statement in json.loads(boundary["policy"])["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Action"]) == set(SECRET_READ_ACTIONS)
        for resource in statement["Resource"]:
            assert resource.startswith(secrets) and "/deploy/" not in resource, resource
    (deploy_policy,) = [
        r.inputs["policy"]
        for r in resources
        if r.type == "aws:iam/rolePolicy:RolePolicy" and r.name.endswith("-deploy-policy")
    ]
    statements = json.loads(deploy_policy)["Statement"]
    service_role = f"arn:aws:iam::{account}:role/{external_secrets_role_name('prod')}"
    for action in (
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
    ):
        for statement in statements:
            if _allows(statement, action, service_role):
                assert statement.get("Condition") == {
                    "StringEquals": {"iam:PermissionsBoundary": boundary_arn}
                }, (action, statement)
    assert any(_allows(s, "iam:PutRolePolicy", service_role) for s in statements)
    removal = "iam:DeleteRolePermissionsBoundary"
    assert not any(_allows(s, removal, service_role) for s in statements)
    assert any(
        _allows({**s, "Effect": "Allow"}, removal, service_role)
        for s in statements
        if s["Effect"] == "Deny" and "Condition" not in s
    )
