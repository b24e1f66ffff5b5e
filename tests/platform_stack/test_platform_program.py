"""platform_stack: both platform stacks render offline and give the service what it needs.

Items 8-11 of issue 19 from the platform's side: prod's storage classes exist (EBS/EFS CSI
add-ons + StorageClasses), staging's IngressClass is AKS app routing's, the ClusterIssuer is a
publicly trusted ACME one, and a network policy engine is on in both clusters.
"""

from __future__ import annotations

import json
import re

import pytest

from platform_stack.outputs import ACME_SERVER, CLOUD_VALUES, platform_outputs
from platform_stack.preview import problems, render
from platform_stack.settings import PlatformSettings, parse_settings, stack_file_config
from stacks.config import ConfigError, parse_config
from stacks.platform_ref import OUTPUT_NAMES
from stacktools.render import RenderedResource

STACKS = {"staging": "azure", "prod": "aws"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[RenderedResource]]:
    return {stack: render(stack) for stack in STACKS}


def _of(resources: list[RenderedResource], typ: str) -> list[dict]:
    return [r.inputs for r in resources if r.type == typ]


def _settings(stack: str) -> PlatformSettings:
    return parse_settings(stack, stack_file_config(stack))


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_offline_preview_passes_schema_and_policy_pack(rendered: dict, stack: str) -> None:
    assert problems(stack, rendered[stack]) == []


@pytest.mark.parametrize("stack", list(STACKS))
def test_every_add_on_is_a_helm_release_pinned_by_version(rendered: dict, stack: str) -> None:
    releases = _of(rendered[stack], "kubernetes:helm.sh/v3:Release")
    charts = {r["chart"] for r in releases}
    assert {
        "external-secrets",
        "keda",
        "kube-prometheus-stack",
        "prometheus-blackbox-exporter",
        "cert-manager",
    } <= charts
    if STACKS[stack] == "aws":
        assert "ingress-nginx" in charts
    for release in releases:
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", release["version"]), release
        assert release["repositoryOpts"]["repo"].startswith("https://")


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_exported_pushgateway_is_installed_and_scraped_keeping_pushed_labels(
    rendered: dict, stack: str
) -> None:
    """The nightly evaluation pushes to the exported pushgatewayUrl: a release serves exactly
    that service and port, and its ServiceMonitor carries the label kube-prometheus-stack's
    Prometheus selects by (its release name) and honours the pushed job/namespace labels."""
    releases = {r["chart"]: r for r in _of(rendered[stack], "kubernetes:helm.sh/v3:Release")}
    url = platform_outputs(_settings(stack), "c", "https://i")["pushgatewayUrl"]
    host, port = url.removeprefix("http://").split(":")
    service, namespace, _ = host.split(".")
    gateway = releases["prometheus-pushgateway"]
    values = gateway["values"]
    assert gateway["namespace"] == namespace
    assert (values["fullnameOverride"], values["service"]["port"]) == (service, int(port))
    monitor = values["serviceMonitor"]
    assert monitor["enabled"] is True and monitor["honorLabels"] is True
    prometheus = releases["kube-prometheus-stack"]
    assert monitor["additionalLabels"] == {"release": prometheus["name"]}
    assert monitor["namespace"] == prometheus["namespace"]


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_cluster_issuer_is_publicly_trusted_and_the_one_exported(
    rendered: dict, stack: str
) -> None:
    (issuer,) = [r for r in _of(rendered[stack], "kubernetes:cert-manager.io/v1:ClusterIssuer")]
    outputs = platform_outputs(_settings(stack), "c", "https://i")
    assert issuer["metadata"]["name"] == outputs["clusterIssuer"]
    assert issuer["spec"]["acme"]["server"] == ACME_SERVER  # not the untrusted staging CA
    (solver,) = issuer["spec"]["acme"]["solvers"]
    assert solver["http01"]["ingress"]["ingressClassName"] == outputs["ingressClass"]
    assert "example." not in outputs["hostname"]


def test_aks_has_workload_identity_oidc_network_policy_and_app_routing(rendered: dict) -> None:
    (cluster,) = _of(rendered["staging"], "azure-native:containerservice:ManagedCluster")
    assert cluster["oidcIssuerProfile"] == {"enabled": True}
    assert cluster["securityProfile"]["workloadIdentity"] == {"enabled": True}
    assert cluster["networkProfile"]["networkPolicy"] == "azure"  # policies are enforced
    assert cluster["ingressProfile"]["webAppRouting"]["enabled"] is True
    assert CLOUD_VALUES["azure"]["ingressClass"] == "webapprouting.kubernetes.azure.com"


def test_eks_enforces_network_policy_and_serves_the_exported_storage_classes(
    rendered: dict,
) -> None:
    resources = rendered["prod"]
    addons = {a["addonName"]: a for a in _of(resources, "aws:eks/addon:Addon")}
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addons["aws-ebs-csi-driver"]["serviceAccountRoleArn"]
    assert addons["aws-efs-csi-driver"]["serviceAccountRoleArn"]
    classes = {
        c["metadata"]["name"]: c
        for c in _of(resources, "kubernetes:storage.k8s.io/v1:StorageClass")
    }
    outputs = platform_outputs(_settings("prod"), "c", "https://i")
    assert classes[outputs["storageClass"]]["provisioner"] == "ebs.csi.aws.com"
    shared = classes[outputs["sharedStorageClass"]]
    assert shared["provisioner"] == "efs.csi.aws.com"
    assert shared["parameters"]["fileSystemId"]  # the platform's EFS file system
    assert _of(resources, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")  # IRSA
    (record,) = _of(resources, "aws:route53/record:Record")
    assert record["name"] == outputs["hostname"]


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_platform_exports_every_output_the_service_reads(stack: str) -> None:
    outputs = platform_outputs(_settings(stack), "cluster", "https://issuer")
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["networkPolicyEngine"] in {"azure", "vpc-cni"}


def test_logs_without_the_identity_that_reads_the_api_key_are_refused() -> None:
    raw = stack_file_config("prod")
    raw["logs"] = json.dumps({"elasticsearchUrl": "https://logs.ciandt.com:9243"})
    with pytest.raises(ValueError, match="roleArn"):
        parse_settings("prod", raw)


def test_a_cluster_without_a_policy_engine_is_refused() -> None:
    outputs = platform_outputs(_settings("staging"), "c", "https://i")
    raw = {
        "platform": json.dumps({"external": {**outputs, "networkPolicyEngine": "none"}}),
        "azure": json.dumps({"resourceGroup": "rg", "tenantId": "t", "oidcIssuerUrl": "https://i"}),
        "alerting": json.dumps({"type": "email", "addresses": ["a@b.co"]}),
    }
    with pytest.raises(ConfigError, match="networkPolicyEngine"):
        parse_config("staging", raw)


def test_logs_configured_add_the_fluent_bit_release_to_the_cluster(tmp_path) -> None:
    """`flowchat-platform:logs` adds the Fluent Bit release (platform_stack.log_shipping) to the
    managed cluster's add-ons; without it, none."""
    import shutil

    import yaml

    from platform_stack.preview import PROJECT_DIR

    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    doc["config"]["flowchat-platform:logs"] = {
        "elasticsearchUrl": "https://logs.ciandt.com:9243",
        "clientId": "6f1c2d1e-0000-4000-8000-000000000001",
        "tenantId": "6f1c2d1e-0000-4000-8000-000000000002",
    }
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    resources = render("staging", project_dir=tmp_path)
    (release,) = [r for r in resources if r.type == "kubernetes:helm.sh/v3:Release" and
                  r.inputs["chart"] == "fluent-bit"]  # fmt: skip
    assert "flowchat-staging" in json.dumps(release.inputs["values"])
    (external,) = [r for r in resources if r.inputs.get("kind") == "ExternalSecret"]
    assert external.inputs["metadata"]["namespace"] == "logging"
    assert external.inputs["spec"]["data"][0]["remoteRef"]["key"] == "elasticsearch-api-key"
    assert not [
        r
        for r in render("staging")
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == "fluent-bit"
    ]


@pytest.mark.parametrize("stack", list(STACKS))
def test_the_platform_creates_the_service_namespaces_with_restricted_pod_security(
    rendered: dict, stack: str
) -> None:
    namespaces = {
        n["metadata"]["name"]: n["metadata"]["labels"]
        for n in _of(rendered[stack], "kubernetes:core/v1:Namespace")
    }
    exported = platform_outputs(_settings(stack), "c", "https://i")["serviceNamespaces"]
    assert exported == [f"flowchat-{stack}"]
    for name in exported:
        for mode in ("enforce", "audit", "warn"):
            assert namespaces[name][f"pod-security.kubernetes.io/{mode}"] == "restricted"


# API group of a custom kind -> the release whose chart installs its CRD
CRD_RELEASE = {
    "cert-manager.io": "cert-manager",
    "external-secrets.io": "external-secrets",
    "monitoring.coreos.com": "kube-prometheus-stack",
}


def _waits_for_its_crds(resources: list[RenderedResource]) -> list[str]:
    """What is created before the release that installs its kind: Pulumi creates resources in
    parallel unless told, and the API server (or Helm) refuses a kind it does not know yet."""
    release_urns = {
        r.inputs["chart"]: r.urn for r in resources if r.type == "kubernetes:helm.sh/v3:Release"
    }
    wrong = []
    for r in resources:
        groups = []
        if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs:
            groups.append(str(r.inputs["apiVersion"]).split("/")[0])
        values = r.inputs.get("values") or {}
        if r.type == "kubernetes:helm.sh/v3:Release" and values.get("serviceMonitor", {}).get(
            "enabled"
        ):
            groups.append("monitoring.coreos.com")
        for group in groups:
            chart = CRD_RELEASE.get(group)
            if chart and release_urns[chart] not in r.dependencies:
                wrong.append(f"{r.urn} does not wait for {chart}")
    return wrong


@pytest.mark.parametrize("stack", list(STACKS))
def test_custom_kinds_wait_for_the_release_that_installs_them(rendered: dict, stack: str) -> None:
    assert _waits_for_its_crds(rendered[stack]) == []


def test_log_shipping_waits_for_external_secrets(tmp_path) -> None:
    import shutil

    import yaml

    from platform_stack.preview import PROJECT_DIR

    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    doc["config"]["flowchat-platform:logs"] = {
        "elasticsearchUrl": "https://logs.ciandt.com:9243",
        "clientId": "6f1c2d1e-0000-4000-8000-000000000001",
        "tenantId": "6f1c2d1e-0000-4000-8000-000000000002",
    }
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    resources = render("staging", project_dir=tmp_path)
    assert any(r.inputs.get("kind") == "ExternalSecret" for r in resources)
    assert _waits_for_its_crds(resources) == []


# --- issue 19 item 7: the deploy identity's rights on the custom kinds the service creates ------
def _custom(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def _granted_rules(
    platform: list[RenderedResource],
    subjects: set[tuple[str, str]],
    bindings: list[RenderedResource] = (),  # type: ignore[assignment]
) -> dict[str, list[dict]]:
    """namespace ("" for cluster-wide) -> the rules the platform's Roles grant these subjects
    ((kind, name): Group on EKS, User = principal on AKS) through the platform's bindings and
    `bindings` (bootstrap's, on AKS)."""
    roles = {
        (
            r.inputs["metadata"].get("namespace", ""),
            r.inputs["kind"],
            r.inputs["metadata"]["name"],
        ): r.inputs.get("rules", [])
        for r in platform
        if r.type.endswith(("v1:Role", "v1:ClusterRole")) and "rbac" in r.type
    }
    granted: dict[str, list[dict]] = {}
    for r in [*platform, *bindings]:
        if not r.type.endswith(("v1:RoleBinding", "v1:ClusterRoleBinding")):
            continue
        bound = {(s["kind"], s["name"]) for s in r.inputs.get("subjects", [])}
        if not bound & subjects:
            continue
        namespace = r.inputs["metadata"].get("namespace", "")
        ref = r.inputs["roleRef"]
        key = ("" if ref["kind"] == "ClusterRole" else namespace, ref["kind"], ref["name"])
        granted.setdefault(namespace, []).extend(roles.get(key, []))
    return granted


def _allowed(rules: list[dict], group: str, resource: str, verbs: set[str]) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verbs <= set(rule["verbs"])
        for rule in rules
    )


def _eks_groups(role_name: str) -> set[tuple[str, str]]:
    """The Kubernetes groups bootstrap's EKS access entry gives the prod role `role_name`."""
    from bootstrap_stack.preview import render as render_bootstrap
    from stacktools.render import mock_outputs

    resources = render_bootstrap()
    (role,) = [
        r for r in resources if r.type == "aws:iam/role:Role" and r.inputs["name"] == role_name
    ]
    arn = mock_outputs(role.type, role.name, role.inputs)["arn"]
    (entry,) = [
        r.inputs
        for r in resources
        if r.type == "aws:eks/accessEntry:AccessEntry" and r.inputs["principalArn"] == arn
    ]
    return {("Group", group) for group in entry.get("kubernetesGroups") or []}


def _aks_deploy_principal() -> tuple[set[tuple[str, str]], list[RenderedResource]]:
    """The staging deploy identity as a Kubernetes subject (its principal id), and bootstrap's
    resources (its bindings)."""
    from bootstrap_stack import trust
    from bootstrap_stack.preview import render as render_bootstrap
    from stacktools.render import mock_outputs

    resources = render_bootstrap()
    subject = trust.github_subject("ciandt/flowchat", trust.GITHUB_ENVIRONMENTS["staging"])
    (cred,) = [
        r.inputs
        for r in resources
        if r.type.endswith(":FederatedIdentityCredential") and r.inputs["subject"] == subject
    ]
    (identity,) = [
        r
        for r in resources
        if r.type.endswith(":UserAssignedIdentity")
        and r.inputs["resourceName"] == cred["resourceName"]
    ]
    principal = mock_outputs(identity.type, identity.name, identity.inputs)["principalId"]
    return {("User", principal)}, resources


WRITE = {"create", "update", "delete", "get", "list", "watch", "patch"}
# what live preflight reads cluster-wide (ops/preflight.py cluster_problems), written out here so
# the test does not read the grant it checks
PREFLIGHT_READS = (
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("storage.k8s.io", "storageclasses"),
    ("networking.k8s.io", "ingressclasses"),
    ("cert-manager.io", "clusterissuers"),
)


def custom_kind_problems(
    service: list[RenderedResource], granted: dict[str, list[dict]], verbs: set[str]
) -> list[str]:
    problems = []
    for r in service:
        api_version, kind = r.inputs.get("apiVersion", ""), r.inputs.get("kind", "")
        if not r.type.startswith("kubernetes:") or not kind or not _custom(api_version):
            continue
        group = api_version.rpartition("/")[0]
        namespace = (r.inputs.get("metadata") or {}).get("namespace", "")
        plural = f"{kind.lower()}s"  # the CRDs' plural names (externalsecrets, probes...)
        if not _allowed(granted.get(namespace, []), group, plural, verbs):
            problems.append(f"{kind} ({group}) in {namespace}: no grant for {sorted(verbs)}")
    return problems


def test_the_staging_deploy_identity_may_write_every_custom_kind_the_service_creates(
    rendered: dict,
) -> None:
    from stacktools.render import render_stack

    service = render_stack("staging", preview=False)
    subjects, bootstrap = _aks_deploy_principal()
    granted = _granted_rules(rendered["staging"], subjects, bootstrap)
    assert custom_kind_problems(service, granted, WRITE) == []
    for group, resource in PREFLIGHT_READS:
        assert _allowed(granted.get("", []), group, resource, {"get"}), (group, resource)
    # without bootstrap's bindings the identity has none of these rights
    assert custom_kind_problems(service, _granted_rules(rendered["staging"], subjects), WRITE)


def test_the_prod_deploy_role_may_write_every_custom_kind_the_service_creates(
    rendered: dict,
) -> None:
    from stacktools.render import render_stack

    service = render_stack("prod", preview=False)
    assert any(_custom(r.inputs.get("apiVersion", "")) for r in service)
    deploy = _granted_rules(rendered["prod"], _eks_groups("flowchat-prod-deploy"))
    assert custom_kind_problems(service, deploy, WRITE) == []
    readonly = _granted_rules(rendered["prod"], _eks_groups("flowchat-prod-readonly"))
    assert custom_kind_problems(service, readonly, {"get", "list", "watch"}) == []
    assert custom_kind_problems(service, readonly, {"create"})  # the read-only role reads only
    # a kind nobody granted fails, naming it
    extra = RenderedResource(
        type="kubernetes:cert-manager.io/v1:Certificate",
        name="flowchat-certificate",
        inputs={
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "c", "namespace": "flowchat-prod"},
        },
        urn="urn:x",
    )
    (problem,) = custom_kind_problems([*service, extra], deploy, WRITE)
    assert problem.startswith("Certificate (cert-manager.io) in flowchat-prod")


@pytest.mark.parametrize("role_name", ["flowchat-prod-deploy", "flowchat-prod-readonly"])
def test_the_prod_roles_may_read_what_preflight_reads_cluster_wide(
    rendered: dict, role_name: str
) -> None:
    granted = _granted_rules(rendered["prod"], _eks_groups(role_name)).get("", [])
    for group, resource in PREFLIGHT_READS:
        assert _allowed(granted, group, resource, {"get"}), (role_name, group, resource)
        assert not _allowed(granted, group, resource, {"create"})


# --- issue 19 item 8: whoever runs the AKS platform may install its Helm releases -------------
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"  # Azure built-in role id


def test_the_aks_platform_caller_is_cluster_admin_on_the_data_plane(rendered: dict) -> None:
    """With local accounts disabled and Azure RBAC, nothing else lets the Helm releases in."""
    from stacktools.render import mock_call

    caller = mock_call("azure-native:authorization:getClientConfig")["objectId"]
    admins = [
        a
        for a in _of(rendered["staging"], "azure-native:authorization:RoleAssignment")
        if str(a["roleDefinitionId"]).endswith(AKS_RBAC_CLUSTER_ADMIN)
    ]
    assert [a["principalId"] for a in admins] == [caller]
    (admin,) = admins
    (cluster,) = [
        r for r in rendered["staging"] if r.type == "azure-native:containerservice:ManagedCluster"
    ]
    assert admin["scope"] == f"{cluster.name}-id"  # the cluster's id (the mocks' ids): only it


DEVICECODE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- cluster: {server: 'https://aks-flowchat-staging.hcp.westeurope.azmk8s.io:443'}
  name: aks-flowchat-staging
users:
- name: clusterUser_rg-flowchat-staging_aks-flowchat-staging
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --environment, AzurePublicCloud, --server-id,
             6dae42f8-4368-4678-94ff-3960e28e3630, --client-id,
             80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id,
             72f988bf-86f1-41af-91ab-2d7cd011db47, --login, devicecode]
"""


def test_the_aks_kubeconfig_logs_in_with_the_azure_cli_not_a_device_code() -> None:
    """devicecode waits for a person to type a code: the Helm releases would hang."""
    import yaml

    from platform_stack.cluster_aks import azurecli_kubeconfig

    doc = yaml.safe_load(azurecli_kubeconfig(DEVICECODE_KUBECONFIG))
    (user,) = doc["users"]
    args = user["user"]["exec"]["args"]
    assert args[args.index("--login") + 1] == "azurecli"
    assert args.count("--login") == 1 and "devicecode" not in args
    assert args[args.index("--server-id") + 1] == "6dae42f8-4368-4678-94ff-3960e28e3630"
