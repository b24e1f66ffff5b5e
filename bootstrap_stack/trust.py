"""Who may log in as what: the OIDC subjects and role ids the bootstrap grants, defined once."""

from __future__ import annotations

from stacks import esc

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
PULUMI_ISSUER = "https://api.pulumi.com/oidc"
AZURE_AUDIENCE = "api://AzureADTokenExchange"  # GitHub tokens exchanged with Entra ID
AWS_AUDIENCE = "sts.amazonaws.com"
# GitHub environment of each stack (the deploy workflow's `environment:`)
GITHUB_ENVIRONMENTS = {
    "staging": "staging",
    "production": "production",
    "production-readonly": "production-readonly",
}
# Azure built-in role ids
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"  # Role Based Access Control Admin
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"  # list user credentials
AKS_RBAC_WRITER = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"  # data plane: write in namespaces
ASSIGNABLE_BY_DEPLOY = (KEY_VAULT_SECRETS_USER, KEY_VAULT_SECRETS_OFFICER)
# EKS access policies of the deploy roles (AccessPolicyAssociation, scoped to the platform's
# service namespaces)
EKS_POLICY_ARN = "arn:aws:eks::aws:cluster-access-policy/{}"
EKS_EDIT = "AmazonEKSEditPolicy"
EKS_VIEW = "AmazonEKSViewPolicy"
# Cluster-scoped Kubernetes kinds each data-plane role the deploy identities get may create: the
# built-in roles' documented rights. All of them are namespaced roles (AKS RBAC Writer, EKS
# Edit/View: "read/write access to most objects in a namespace"), so none; AKS Cluster User
# only lists the kubeconfig. The service program must create no cluster-scoped kind
# (tests/stacks/test_first_run.py reads the grants the bootstrap program makes).
KUBE_ROLE_CLUSTER_KINDS: dict[str, frozenset[str]] = {
    AKS_RBAC_WRITER: frozenset(),
    AKS_CLUSTER_USER: frozenset(),
    EKS_EDIT: frozenset(),
    EKS_VIEW: frozenset(),
}


def github_subject(repository: str, environment: str) -> str:
    return f"repo:{repository}:environment:{environment}"


def esc_subject(organization: str, environment: str, cloud: str) -> str:
    """The `sub` of the token ESC presents when opening `flowchat/<environment>`: built from the
    committed definition's subjectAttributes, so the trust follows the file."""
    return esc.oidc_subject(esc.load_definition(environment), cloud, organization, environment)


def esc_audience(organization: str, cloud: str) -> str:
    """The `aud` of that token (`azure:<org>`, `aws:<org>`)."""
    return esc.oidc_audience(cloud, organization)


def role_definition(subscription: str, role: str) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def resource_group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def aks_cluster_id(subscription: str, group: str, cluster: str) -> str:
    """An AKS cluster's ARM id (what `az aks show --query id` prints)."""
    return (
        f"{resource_group_id(subscription, group)}"
        f"/providers/Microsoft.ContainerService/managedClusters/{cluster}"
    )


def aks_namespace_scope(cluster_id: str, namespace: str) -> str:
    """The scope of an Azure role assignment that AKS (Azure RBAC for Kubernetes authorization)
    applies to one namespace only: `<cluster id>/namespaces/<namespace>` (AKS docs)."""
    return f"{cluster_id}/namespaces/{namespace}"


def only_key_vault_roles_condition() -> str:
    """ABAC condition: role assignments written or deleted only for the two Key Vault roles (no
    User Access Administrator: the deploy identity cannot grant itself Owner)."""
    roles = ", ".join(ASSIGNABLE_BY_DEPLOY)
    return (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "
        f"ForAnyOfAnyValues:GuidEquals {{{roles}}})) AND "
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "
        f"ForAnyOfAnyValues:GuidEquals {{{roles}}}))"
    )
