"""AWS: GitHub's OIDC provider, the prod deploy role and its read-only twin (each trusting one
GitHub environment, with a scoped permission policy and an EKS access entry), and ESC's role
(trusting Pulumi's issuer) that reads the deploy secrets."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from bootstrap_stack import trust
from bootstrap_stack.settings import BootstrapSettings
from platform_stack.deployer_rbac import DEPLOYERS_GROUP, READERS_GROUP
from stacks.aws_trust import web_identity_trust
from stacks.secrets import (
    external_secrets_boundary,
    external_secrets_boundary_arn,
    external_secrets_boundary_name,
    external_secrets_role_name,
)

ESC_SECRETS = "flowchat/prod/deploy/*"  # deploy/esc/flowchat-prod.yaml reads these
STACK_SECRETS = "flowchat/prod/*"
SERVICE_STACK = "prod"  # the service stack this account serves (Pulumi.prod.yaml)


# IAM writes that carry the iam:PermissionsBoundary condition key: allowed on the service's
# role only while it has bootstrap's boundary (DeleteRolePermissionsBoundary is denied)
BOUNDED_IAM_WRITES = (
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
)


def _web_identity(provider_arn: str, host: str, subject: str, audience: str) -> str:
    return json.dumps(web_identity_trust(provider_arn, host, subject, audience))


def deploy_policy(account: str, region: str, cluster: str, write: bool) -> str:
    """What `pulumi up` of the prod stack does in AWS: its secrets, its IRSA role, the cluster."""
    secrets = f"arn:aws:secretsmanager:{region}:{account}:secret:{STACK_SECRETS}"
    # the one role the service stack creates: IAM writes on any other role (this deploy role
    # included) would let the deploy role grant itself more rights
    service_role = f"arn:aws:iam::{account}:role/{external_secrets_role_name(SERVICE_STACK)}"
    boundary = external_secrets_boundary_arn(account, SERVICE_STACK)
    read = ["secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"]
    statements = [
        {
            "Effect": "Allow",
            "Action": ["eks:DescribeCluster"],
            "Resource": f"arn:aws:eks:{region}:{account}:cluster/{cluster}",
        },
        {"Effect": "Allow", "Action": read, "Resource": secrets},
        {
            "Effect": "Allow",
            "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies"],
            "Resource": service_role,
        },
    ]
    if write:
        statements += [
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:CreateSecret",
                    "secretsmanager:TagResource",
                    "secretsmanager:DeleteSecret",
                    "secretsmanager:UpdateSecret",
                    "secretsmanager:PutSecretValue",
                ],
                "Resource": secrets,
            },
            {
                # what changes the role's rights only with bootstrap's boundary on the role: its
                # rights never exceed reading the stack's secrets, so trusting itself (below)
                # gains the deploy role nothing it cannot already read through its pods
                "Effect": "Allow",
                "Action": list(BOUNDED_IAM_WRITES),
                "Resource": service_role,
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}},
            },
            {
                # no iam:PermissionsBoundary key in these requests (IAM's condition keys table)
                "Effect": "Allow",
                "Action": ["iam:DeleteRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy"],
                "Resource": service_role,
            },
            {
                "Effect": "Deny",
                "Action": ["iam:DeleteRolePermissionsBoundary"],
                "Resource": f"arn:aws:iam::{account}:role/*",
            },
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass(frozen=True)
class AwsTrustArgs:
    settings: BootstrapSettings
    provider: aws.Provider
    # the prod platform's service namespaces (its output serviceNamespaces): the EKS access scope
    namespaces: pulumi.Input[Sequence[str]] = ()
    # the Secrets Manager secrets ESC reads: secret name -> value (bootstrap's secret config)
    deploy_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class AwsTrust(pulumi.ComponentResource):
    deploy_role_arn: pulumi.Output[str]
    readonly_role_arn: pulumi.Output[str]
    esc_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AwsTrustArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:bootstrap:AwsTrust", name, None, opts)
        settings = args.settings
        cfg = settings.aws
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(provider=args.provider)
        ).account_id
        github = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc",
            url=trust.GITHUB_ISSUER,
            client_id_lists=[trust.AWS_AUDIENCE],
            opts=child,
        )
        pulumi_oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-pulumi-oidc",
            url=trust.PULUMI_ISSUER,
            client_id_lists=[trust.esc_audience(settings.organization, "aws")],
            opts=child,
        )
        # the permissions boundary of the one role the service stack creates
        aws.iam.Policy(
            f"{name}-external-secrets-boundary",
            name=external_secrets_boundary_name(SERVICE_STACK),
            description="Permissions boundary of the prod stack's External Secrets role",
            policy=account.apply(lambda a: external_secrets_boundary(cfg.region, a, SERVICE_STACK)),
            opts=child,
        )
        github_host = trust.GITHUB_ISSUER.removeprefix("https://")
        roles = {}
        for key, environment, write in (
            ("deploy", trust.GITHUB_ENVIRONMENTS["production"], True),
            ("readonly", trust.GITHUB_ENVIRONMENTS["production-readonly"], False),
        ):
            subject = trust.github_subject(settings.repository, environment)
            role = aws.iam.Role(
                f"{name}-{key}",
                name=f"flowchat-prod-{key}",
                assume_role_policy=github.arn.apply(
                    lambda arn, s=subject: _web_identity(arn, github_host, s, trust.AWS_AUDIENCE)
                ),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{key}-policy",
                role=role.id,
                policy=account.apply(
                    lambda a, w=write: deploy_policy(a, cfg.region, cfg.cluster_name, w)
                ),
                opts=child,
            )
            access = aws.eks.AccessEntry(
                f"{name}-{key}-access",
                cluster_name=cfg.cluster_name,
                principal_arn=role.arn,
                # the platform's Roles for the service's custom kinds and preflight's reads
                # (platform_stack.deployer_rbac): read-write for deploys, read-only for previews
                kubernetes_groups=[DEPLOYERS_GROUP if write else READERS_GROUP],
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-{key}-access-policy",
                cluster_name=cfg.cluster_name,
                principal_arn=role.arn,
                policy_arn=trust.EKS_POLICY_ARN.format(trust.EKS_EDIT if write else trust.EKS_VIEW),
                # only inside the namespaces the platform created for the service stacks
                access_scope={"type": "namespace", "namespaces": args.namespaces},
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[access])
                ),
            )
            roles[key] = role
        pulumi_host = trust.PULUMI_ISSUER.removeprefix("https://")
        esc = aws.iam.Role(
            f"{name}-esc",
            name="flowchat-prod-esc",
            assume_role_policy=pulumi_oidc.arn.apply(
                lambda arn: _web_identity(
                    arn,
                    pulumi_host,
                    trust.esc_subject(settings.organization, "prod", "aws"),
                    trust.esc_audience(settings.organization, "aws"),
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-esc-policy",
            role=esc.id,
            policy=account.apply(
                lambda a: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["secretsmanager:GetSecretValue"],
                                "Resource": (
                                    f"arn:aws:secretsmanager:{cfg.region}:{a}:secret:{ESC_SECRETS}"
                                ),
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        for secret_name, value in sorted(args.deploy_secrets.items()):
            if not fnmatch.fnmatchcase(secret_name, ESC_SECRETS):
                raise ValueError(f"ESC reads {secret_name}, outside what its role may read")
            key = secret_name.rsplit("/", 1)[-1].lower().replace("_", "-")
            secret = aws.secretsmanager.Secret(
                f"{name}-deploy-secret-{key}",
                name=secret_name,
                recovery_window_in_days=7,
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-deploy-secret-{key}-value",
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(value),
                opts=child,
            )
        self.deploy_role_arn = roles["deploy"].arn
        self.readonly_role_arn = roles["readonly"].arn
        self.esc_role_arn = esc.arn
        self.register_outputs({"deployRoleArn": self.deploy_role_arn})
