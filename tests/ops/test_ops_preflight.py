"""ops/preflight.py against a deploy target on loopback: each missing prerequisite is named.

Pulumi Cloud (ESC open, the platform stack's outputs), the Kubernetes API (through the official
client and a kubeconfig), Grafana and the registry are one fake server (tests/ops/conftest.py);
the project files are copies of the committed ones with the placeholders filled in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.contracts import API_DEPLOYMENT
from ops import preflight as pf
from stacks import esc
from stacks.placeholders import PLACEHOLDER_PATTERNS, placeholder_kind
from stacks.platform_ref import OUTPUT_NAMES
from stacktools.first_run import bootstrap_environments
from stacktools.render import platform_reference_outputs

ROOT = Path(__file__).resolve().parents[2]
ORG = "acme"
PULUMI_TOKEN = "pul-token"  # what pulumi/auth-actions hands the job
REAL = {
    "00000000-0000-0000-0000-000000000000": "7f0c2f4e-5a8b-4c61-9d7e-2b1a3c4d5e6f",
    "11111111-1111-1111-1111-111111111111": "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
    "22222222-2222-2222-2222-222222222222": "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c",
    "33333333-3333-3333-3333-333333333333": "9c8b7a6f-5e4d-4c3b-8a29-18f7e6d5c4b3",
    "44444444-4444-4444-4444-444444444444": "3b2a1f0e-9d8c-4b7a-9695-a4b3c2d1e0f9",
}


def _fill(text: str) -> str:
    for fake, real in REAL.items():
        text = text.replace(fake, real)
    return text


@pytest.fixture
def project(tmp_path: Path, fake_deploy_target: Any) -> Path:
    """The committed staging files, placeholders filled, pointed at the loopback target."""
    root = tmp_path / "repo"
    for rel in (
        "Pulumi.yaml",
        "deploy/esc/flowchat-staging.yaml",
        "platform_stack/Pulumi.staging.yaml",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(_fill((ROOT / rel).read_text()))
    doc = yaml.safe_load(_fill((ROOT / "Pulumi.staging.yaml").read_text()))
    host = fake_deploy_target.url.removeprefix("http://")
    doc["config"]["flowchat:grafana"]["url"] = fake_deploy_target.url
    doc["config"]["flowchat:image"] = {"repository": f"{host}/acme/flowchat", "tag": "1.2.3"}
    (root / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    target = fake_deploy_target
    outputs = platform_reference_outputs(f"{ORG}/flowchat-platform/staging")
    target.stacks[f"{ORG}/flowchat-platform/staging"] = outputs
    target.esc[f"{ORG}/flowchat/staging"] = {
        "pulumiConfig": {
            "flowchat:alertingUrl": "https://hooks.slack.test/T/B/x",
            "flowchat:grafanaAuth": target.grafana_token,
            "flowchat:registryAuth": target.registry_auth,
            # the ids bootstrap writes into flowchat/staging-ids, handed over as the
            # committed definition maps them
            **_bootstrap_ids_config("staging"),
        }
    }
    target.crds = set(pf.REQUIRED_CRDS)
    target.storage_classes = {outputs["storageClass"], outputs["sharedStorageClass"]}
    target.ingress_classes = {outputs["ingressClass"]}
    target.cluster_issuers = {outputs["clusterIssuer"]}
    target.images = {"acme/flowchat:1.2.3"}
    target.hosts = {outputs["hostname"]}  # type: ignore[attr-defined]
    return root


def _bootstrap_ids_config(stack: str) -> dict[str, str]:
    ids = bootstrap_environments()[esc.ids_environment(stack)]["values"][esc.IDS]
    config = esc.load_definition(stack)["values"]["pulumiConfig"]
    return {k: esc.resolve_ids(v, ids) for k, v in config.items() if esc.is_id_only(v)}


def _run(target: Any, root: Path) -> pf.Report:
    from kubernetes import client, config

    def kube_api() -> Any:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(target.kubeconfig), client_configuration=cfg)
        cfg.retries = 0
        return client.ApiClient(configuration=cfg)

    def resolve(host: str) -> None:
        if host not in target.hosts:
            raise OSError(f"[Errno -2] Name or service not known: {host}")

    with httpx.Client(timeout=30) as http:
        clients = pf.Clients(
            http=http,
            cloud=pf.PulumiCloud(http, PULUMI_TOKEN, target.url),
            kube_api=kube_api,
            resolve=resolve,
            registry_scheme="http",
        )
        return pf.preflight("staging", org=ORG, clients=clients, root=root)


def test_a_ready_target_passes_every_check(fake_deploy_target: Any, project: Path) -> None:
    report = _run(fake_deploy_target, project)
    assert report.problems == []
    assert report.checks >= 15


def _drop_output(name: str) -> Any:
    def mutate(t: Any) -> None:
        del t.stacks[f"{ORG}/flowchat-platform/staging"][name]

    return mutate


BREAKS = {
    "esc-missing": (lambda t: t.esc.clear(), "ESC environment acme/flowchat/staging does not open"),
    "pulumi-token-refused": (
        lambda t: setattr(t, "pulumi_token", "other"),
        "does not open: HTTP 401",
    ),
    "no-registry-auth-in-esc": (
        lambda t: t.esc[f"{ORG}/flowchat/staging"]["pulumiConfig"].pop("flowchat:registryAuth"),
        "flowchat:registryAuth is not delivered",
    ),
    "no-tenant-id-in-esc": (
        lambda t: t.esc[f"{ORG}/flowchat/staging"]["pulumiConfig"].pop("flowchat:azureTenantId"),
        "deploy/esc/flowchat-staging.yaml: values.pulumiConfig.flowchat:azureTenantId is not "
        "delivered",
    ),
    "placeholder-principal-in-esc": (
        lambda t: t.esc[f"{ORG}/flowchat/staging"]["pulumiConfig"].update(
            {"flowchat:azureRotationPrincipalId": "22222222-2222-2222-2222-222222222222"}
        ),
        "values.pulumiConfig.flowchat:azureRotationPrincipalId holds a placeholder",
    ),
    "namespace-not-created": (
        lambda t: t.stacks[f"{ORG}/flowchat-platform/staging"].update(serviceNamespaces=["other"]),
        "namespace flowchat-staging is not one the platform created",
    ),
    "cluster-down": (lambda t: setattr(t, "kube_up", False), "is unreachable"),
    "no-keda-crd": (
        lambda t: t.crds.discard("scaledobjects.keda.sh"),
        "has no CRD scaledobjects.keda.sh",
    ),
    "no-storage-class": (
        lambda t: t.storage_classes.discard("managed-csi"),
        "storage class managed-csi",
    ),
    "no-ingress-class": (lambda t: t.ingress_classes.clear(), "has no IngressClass webapprouting"),
    "no-cluster-issuer": (lambda t: t.cluster_issuers.clear(), "has no ClusterIssuer letsencrypt"),
    "grafana-token-without-alerting": (
        lambda t: t.grafana_denied.add("/api/v1/provisioning/alert-rules"),
        "Grafana token may not read alert rules",
    ),
    "grafana-token-wrong": (
        lambda t: setattr(t, "grafana_token", "another"),
        "Grafana token may not read folders",
    ),
    "image-not-pushed": (lambda t: t.images.clear(), "cannot pull"),
    "pull-credentials-refused": (
        lambda t: setattr(t, "registry_auth", "someone:else"),
        "cannot pull",
    ),
    # the service was deployed before (its Ingress exists): the record must resolve
    "host-not-resolving": (
        lambda t: (t.hosts.clear(), t.ingresses.update({"flowchat-staging": {API_DEPLOYMENT}})),
        "does not resolve",
    ),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_each_missing_prerequisite_is_named(
    case: str, fake_deploy_target: Any, project: Path
) -> None:
    mutate, expected = BREAKS[case]
    mutate(fake_deploy_target)
    report = _run(fake_deploy_target, project)
    assert any(expected in p for p in report.problems), report.problems


def test_first_deploy_without_a_dns_record_passes_with_a_note(
    fake_deploy_target: Any, project: Path
) -> None:
    """No Ingress yet: on AKS app routing's external-dns writes the record only from the Ingress
    this deploy creates, so the missing record is not a problem."""
    fake_deploy_target.hosts.clear()
    report = _run(fake_deploy_target, project)
    assert report.problems == []
    hostname = fake_deploy_target.stacks[f"{ORG}/flowchat-platform/staging"]["hostname"]
    assert report.notes == [
        f"hostname {hostname} not checked: first deploy, the record is written from the Ingress "
        f"(flowchat-staging/{API_DEPLOYMENT} does not exist yet)"
    ]


def test_with_the_ingress_deployed_a_missing_record_names_the_hostname(
    fake_deploy_target: Any, project: Path
) -> None:
    fake_deploy_target.hosts.clear()
    fake_deploy_target.ingresses["flowchat-staging"] = {API_DEPLOYMENT}
    report = _run(fake_deploy_target, project)
    hostname = fake_deploy_target.stacks[f"{ORG}/flowchat-platform/staging"]["hostname"]
    assert [p for p in report.problems if hostname in p] == [
        f"hostname {hostname} does not resolve: [Errno -2] Name or service not known: {hostname}"
    ]
    assert report.notes == []


def test_an_ingress_in_another_namespace_is_not_the_services(
    fake_deploy_target: Any, project: Path
) -> None:
    fake_deploy_target.hosts.clear()
    fake_deploy_target.ingresses["flowchat-prod"] = {API_DEPLOYMENT}
    assert _run(fake_deploy_target, project).problems == []


def test_the_command_prints_the_notes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = pf.Report(checks=1, notes=["hostname h not checked: first deploy"])
    monkeypatch.setattr(pf, "preflight", lambda *a, **k: report)
    assert pf.main(["--stack", "staging", "--offline"], env={}) == 0
    assert "note: hostname h not checked: first deploy" in capsys.readouterr().out


@pytest.mark.parametrize("output", OUTPUT_NAMES)
def test_each_missing_platform_output_is_named(
    output: str, fake_deploy_target: Any, project: Path
) -> None:
    _drop_output(output)(fake_deploy_target)
    report = _run(fake_deploy_target, project)
    assert (
        f"platform stack acme/flowchat-platform/staging has no output {output}" in report.problems
    )


def test_no_placeholder_is_committed() -> None:
    """The ids come from bootstrap through ESC (issue 19): nothing to copy into the files."""
    assert pf.placeholder_problems("staging", ROOT) == []
    assert pf.placeholder_problems("prod", ROOT) == []


@pytest.mark.parametrize(
    ("rel", "old", "new", "expected"),
    [
        (
            "deploy/esc/flowchat-staging.yaml",
            "${ids.clientId}",
            "33333333-3333-3333-3333-333333333333",
            "deploy/esc/flowchat-staging.yaml: values.azure.login.fn::open::azure-login.clientId",
        ),
        (
            "Pulumi.staging.yaml",
            "resourceGroup: rg-flowchat-staging",
            "resourceGroup: rg-flowchat-staging\n    tenantId: 00000000-0000-0000-0000-0000"
            "00000000",
            "Pulumi.staging.yaml: config.flowchat:azure.tenantId",
        ),
    ],
)
def test_a_placeholder_written_into_a_file_is_named_by_file_and_key(
    tmp_path: Path, rel: str, old: str, new: str, expected: str
) -> None:
    for name in ("Pulumi.staging.yaml", "deploy/esc/flowchat-staging.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        text = (ROOT / name).read_text()
        if name == rel:
            assert old in text
            text = text.replace(old, new)
        (tmp_path / name).write_text(text)
    problems = pf.placeholder_problems("staging", tmp_path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_filled_in_files_have_no_placeholder(project: Path) -> None:
    assert pf.placeholder_problems("staging", project) == []


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("00000000-0000-0000-0000-000000000000", True),
        ("https://westeurope.oic.prod-aks.azure.com/tenant/0000/1111/", True),
        ("arn:aws:iam::123456789012:role/x", True),
        ("oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE", True),
        ("chat.example.com", True),
        ("7f0c2f4e-5a8b-4c61-9d7e-2b1a3c4d5e6f", False),
        ("chat.flowchat.ciandt.com", False),
        ("arn:aws:iam::210987654321:role/x", False),
    ],
)
def test_placeholder_patterns(value: str, placeholder: bool) -> None:
    assert (placeholder_kind(value) is not None) is placeholder
    assert PLACEHOLDER_PATTERNS  # defined once, in stacks.placeholders


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_committed_files_pass_the_offline_preflight(
    stack: str, capsys: pytest.CaptureFixture
) -> None:
    """Nothing is left to fill in by hand before the first deploy (the ids arrive via ESC)."""
    assert pf.main(["--stack", stack, "--offline"], env={}) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith(f"preflight {stack}: all ")


def _deploy_jobs() -> dict[str, Any]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    return workflow, {
        name: job
        for name, job in workflow["jobs"].items()
        if any("pulumi/actions" in str(step.get("uses", "")) for step in job.get("steps", []))
    }


def test_every_deploy_job_runs_preflight_first_and_before_pulumi() -> None:
    _, jobs = _deploy_jobs()
    assert set(jobs) == {"up-staging", "preview-prod", "up-prod"}
    for name, job in jobs.items():
        steps = job["steps"]
        runs = [str(s.get("run", "")) for s in steps]
        (offline,) = [i for i, r in enumerate(runs) if "ops.preflight" in r and "--offline" in r]
        (live,) = [i for i, r in enumerate(runs) if "ops.preflight" in r and "--offline" not in r]
        pulumi = next(i for i, s in enumerate(steps) if "pulumi/actions" in str(s.get("uses")))
        # the first step after checkout, Python and the program's environment
        assert [s.get("uses", s.get("name")) for s in steps[:offline]][-1].startswith("Install")
        logins = [i for i, s in enumerate(steps) if "auth-actions" in str(s.get("uses"))]
        assert logins and logins[0] < live < pulumi, name
        assert job["steps"][live]["env"]["PULUMI_ORG"] == "${{ vars.PULUMI_ORG }}"


def test_the_image_repository_is_a_variable_not_one_organisation() -> None:
    """Item 7: IMAGE_REPOSITORY was hard-coded to ghcr.io/flowchat/flowchat."""
    workflow, _ = _deploy_jobs()
    assert workflow["env"]["IMAGE_REPOSITORY"] == "${{ vars.IMAGE_REPOSITORY }}"


# --- the image this deploy ships (issue 19 gap: preflight read the stack file's tag) -----------
SHIPPED = "sha256:" + "ab" * 32


def _run_image(target: Any, root: Path, image: tuple[str, str] | None) -> pf.Report:
    with httpx.Client(timeout=30) as http:
        clients = pf.Clients(
            http=http,
            cloud=pf.PulumiCloud(http, PULUMI_TOKEN, target.url),
            kube_api=lambda: None,
            resolve=lambda host: None,
            registry_scheme="http",
        )
        return pf.preflight("staging", org=ORG, clients=clients, root=root, image=image)


def test_the_live_check_pulls_the_image_deploy_pushed_not_the_stack_files(
    fake_deploy_target: Any, project: Path
) -> None:
    host = fake_deploy_target.url.removeprefix("http://")
    image = (f"{host}/acme/pushed", SHIPPED)
    # the stack file's image (acme/flowchat:1.2.3) is there; the pushed digest is not yet
    problems = [p for p in _run_image(fake_deploy_target, project, image).problems if "pull" in p]
    assert problems == [
        f"the cluster cannot pull {host}/acme/pushed@{SHIPPED} with the pull credentials "
        "(flowchat:registryAuth): registry answers HTTP 404"
    ]
    fake_deploy_target.images.add(f"acme/pushed:{SHIPPED}")
    problems = [p for p in _run_image(fake_deploy_target, project, image).problems if "pull" in p]
    assert problems == []


@pytest.mark.parametrize(
    "value", ["ghcr.io/acme/flowchat", "ghcr.io/acme/flowchat@1.2.3", "ghcr.io/acme/flowchat:1@x"]
)
def test_image_option_takes_only_a_repository_at_a_digest(value: str) -> None:
    with pytest.raises(SystemExit):
        pf.build_parser({}).parse_args(["--stack", "staging", "--image", value])


def _shell_expand(run: str, env: dict[str, str]) -> list[str]:
    """argv of a `run:` line as bash gives it to the process (double-quoted $NAME expanded)."""
    import shlex

    expanded = re.sub(r"\$([A-Z_]+)", lambda m: env[m.group(1)], run)
    return shlex.split(expanded)


def test_deploy_passes_the_built_digest_to_the_live_preflight() -> None:
    """deploy.yml as GitHub runs it: the step's `${{ }}` values become env, bash expands them,
    and ops.preflight parses the result to the repository and digest `pulumi up` deploys."""
    workflow, jobs = _deploy_jobs()
    context = {
        "${{ vars.IMAGE_REPOSITORY }}": "ghcr.io/acme/flowchat",
        "${{ needs.image.outputs.digest }}": SHIPPED,
        "${{ vars.PULUMI_ORG }}": ORG,
    }
    for name, job in jobs.items():
        (live,) = [
            s
            for s in job["steps"]
            if "ops.preflight" in str(s.get("run", "")) and "--offline" not in s["run"]
        ]
        env = {k: context[v] for k, v in {**workflow["env"], **live["env"]}.items()}
        argv = _shell_expand(live["run"].strip(), env)
        assert argv[:3] == [".venv/bin/python", "-m", "ops.preflight"], name
        args = pf.build_parser({}).parse_args(argv[3:])
        (up,) = [s for s in job["steps"] if "pulumi/actions" in str(s.get("uses"))]
        deployed = json.loads(yaml.safe_load(up["with"]["config-map"])["flowchat:image"]["value"])
        repository = re.fullmatch(r"\$\{\{ env\.(\w+) \}\}", deployed["repository"])
        assert repository is not None, deployed
        assert args.image == (
            context[workflow["env"][repository.group(1)]],
            context[deployed["tag"]],
        ), name


def test_preflight_reads_the_ingress_the_service_stack_creates() -> None:
    """The Ingress whose absence means "first deploy" is the one stacks.routing renders."""
    from stacktools.render import render_stack

    for stack in ("staging", "prod"):
        (ingress,) = [
            r for r in render_stack(stack) if r.type == "kubernetes:networking.k8s.io/v1:Ingress"
        ]
        meta = ingress.inputs["metadata"]
        assert (meta["name"], meta["namespace"]) == (API_DEPLOYMENT, f"flowchat-{stack}")
