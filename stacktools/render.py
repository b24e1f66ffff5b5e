"""Run the Pulumi program offline, under `pulumi.runtime.set_mocks`, and return what it declares.

`render_stack("staging")` reads Pulumi.yaml (project defaults) and Pulumi.staging.yaml the way the
CLI does, applies `config_overrides`, replaces `secure:` values (and the secret keys CI sets, see
`stacks.config.offline_secret_keys`) with the placeholder "[secret]", runs `__main__.py` and returns
every registered resource sorted by (type, name) with plain-JSON inputs: integral floats back to
ints, secret values as "[secret]", resource references as their URN.
"""

from __future__ import annotations

import base64
import json
import os
import runpy
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pydantic import BaseModel

from stacks.config import ESC_ID_PLACEHOLDER, offline_id_keys, offline_secret_keys

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "flowchat"
SECRET_PLACEHOLDER = "[secret]"
UNKNOWN_PLACEHOLDER = "[unknown]"
MOCK_AWS_ACCOUNT = "210987654321"
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_LOCK = threading.Lock()


class RenderedResource(BaseModel):
    type: str
    name: str
    inputs: dict[str, Any]
    urn: str
    parent_urn: str | None = None
    custom: bool = True  # False: a component
    provider: str | None = None  # explicit provider reference ("<urn>::<id>"), None: default
    dependencies: list[str] = []  # URNs this resource waits for (depends_on, expanded)


class Violation(BaseModel):
    policy: str
    level: str  # "mandatory" | "advisory" | "remediate" (as pulumi-policy reports it)
    message: str
    resource: str | None = None


class StackNotFoundError(FileNotFoundError):
    """No Pulumi.<stack>.yaml in the project directory."""


def _hidden(value: Any) -> Any:
    """A secret's shape with every leaf replaced by the placeholder (a Secret's stringData
    stays an object, so it can be schema-checked without showing a value)."""
    if isinstance(value, dict) and _SIG not in value:
        return {k: _hidden(v) for k, v in value.items()}
    return SECRET_PLACEHOLDER


def plain(value: Any) -> Any:
    """Mock/wire values -> plain JSON: secrets unwrapped to a placeholder, floats to ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return _hidden(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn", "")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return UNKNOWN_PLACEHOLDER
    return value


def _config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` (anywhere in a value) by the placeholder; report whether any was."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], hit = _strip_secure(v)
            found = found or hit
        return out, found
    if isinstance(value, list):
        items = [_strip_secure(v) for v in value]
        return [v for v, _ in items], any(hit for _, hit in items)
    return value, False


def _qualify(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _set_path(values: dict[str, str], key: str, raw: str) -> None:
    """`pulumi config set --path ns:top.a.b VALUE`: set inside the JSON object of `ns:top`."""
    namespace, _, path = key.partition(":")
    top, *rest = path.split(".")
    full = f"{namespace}:{top}"
    try:
        obj = json.loads(values.get(full, "{}"))
    except json.JSONDecodeError:
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    node = obj
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError:
        parsed = raw
    node[rest[-1]] = raw if isinstance(parsed, dict | list) or parsed is None else parsed
    values[full] = json.dumps(obj)


def load_stack_file(stack: str, project_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """The parsed `Pulumi.<stack>.yaml` (StackNotFoundError when there is none)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackNotFoundError(f"no stack file {path.name} in {project_dir}")
    return yaml.safe_load(path.read_text()) or {}


def stack_config(
    stack: str,
    *,
    config_overrides: Mapping[str, str] | None = None,
    project_dir: Path = REPO_ROOT,
    offline_secrets: bool = True,
    stack_doc: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The config map the CLI would hand the program, and the keys that are (placeholder) secrets.

    `offline_secrets=False` adds no placeholder for the secret keys the ESC environment delivers
    (the first-run test supplies them from the ESC definition instead). `stack_doc` replaces the
    parsed stack file.

    Overrides: `"flowchat:thresholds"` (or `"thresholds"`) replaces a whole key with the given
    string (objects as JSON); `"thresholds.queueDepth"` sets one field inside an object, like
    `pulumi config set --path`.
    """
    project_file = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    project = project_file["name"]
    values: dict[str, str] = {}
    secret: set[str] = set()
    for key, decl in (project_file.get("config") or {}).items():
        if isinstance(decl, dict) and ("default" in decl or "value" in decl):
            values[_qualify(key, project)] = _config_string(decl.get("default", decl.get("value")))
        elif not isinstance(decl, dict):
            values[_qualify(key, project)] = _config_string(decl)
    if stack_doc is None:
        stack_doc = load_stack_file(stack, project_dir)
    for key, value in (stack_doc.get("config") or {}).items():
        value, is_secret = _strip_secure(value)
        full = _qualify(key, project)
        values[full] = _config_string(value)
        if is_secret:
            secret.add(full)
    for key, value in (config_overrides or {}).items():
        full = _qualify(key, project)
        if "." in full.partition(":")[2]:
            _set_path(values, full, value)
        else:
            values[full] = value
    prefix = f"{project}:"
    unqualified = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    for key in offline_secret_keys(unqualified) if offline_secrets else ():
        full = f"{prefix}{key}"
        if full not in values:
            values[full] = SECRET_PLACEHOLDER
        secret.add(full)
    for key in offline_id_keys(unqualified) if offline_secrets else ():
        values.setdefault(f"{prefix}{key}", ESC_ID_PLACEHOLDER)
    return values, sorted(secret)


# What the real providers compute for the outputs the program reads (mock values).
MOCK_SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
MOCK_TENANT = "7e1a5c3d-0000-4000-8000-00000000007e"


def platform_reference_outputs(reference: str) -> dict[str, Any]:
    """What a StackReference to `ORG/flowchat-platform/STACK` reads offline: the outputs the
    platform program builds (platform_stack.outputs) from its committed stack file, with the
    cluster's own values (name, OIDC issuer) as a provider would report them."""
    from platform_stack.outputs import platform_outputs
    from platform_stack.settings import PROJECT as PLATFORM
    from platform_stack.settings import parse_settings, stack_file_config

    _, project, stack = reference.split("/")
    if project != PLATFORM:
        raise ValueError(f"no offline outputs for stack reference {reference}")
    settings = parse_settings(stack, stack_file_config(stack))
    issuer = f"oidc.mock/{settings.cluster_name}"
    provider = (
        f"arn:aws:iam::{MOCK_AWS_ACCOUNT}:oidc-provider/{issuer}" if settings.cloud == "aws" else ""
    )
    return platform_outputs(settings, settings.cluster_name, f"https://{issuer}", provider)


def platform_extra_outputs(reference: str) -> dict[str, Any]:
    """The platform's outputs beyond the service's (platform_stack.program): its resource group
    on Azure and its kubeconfig, which bootstrap reads."""
    from platform_stack.settings import parse_settings, stack_file_config

    settings = parse_settings(
        reference.rsplit("/", 1)[-1], stack_file_config(reference.rsplit("/", 1)[-1])
    )
    if settings.mode == "external":
        return {}
    # the cluster admin's kubeconfig (bootstrap binds the AKS deploy identity with it)
    kubeconfig = {"kubeconfig": f"apiVersion: v1\nkind: Config\n# {settings.cluster_name}\n"}
    if settings.azure is None:
        return kubeconfig
    return {"resourceGroup": settings.azure.resource_group, **kubeconfig}


def mock_outputs(typ: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs a provider computes that the program reads (ids, ARNs, principal ids)."""
    if typ == "pulumi:pulumi:StackReference":
        reference = str(inputs.get("name") or name)
        return {
            "name": reference,
            "outputs": {
                **platform_reference_outputs(reference),
                **platform_extra_outputs(reference),
            },
            "secretOutputNames": [],
        }
    outputs = dict(inputs)
    if typ.startswith("aws:"):
        outputs.setdefault("arn", f"arn:aws:mock:::{name}")
    if typ == "pagerduty:index/serviceIntegration:ServiceIntegration":
        outputs.setdefault("integrationKey", f"routing-key-of-{name}")
    if typ == "azure-native:managedidentity:UserAssignedIdentity":
        outputs.setdefault("name", inputs.get("resourceName", name))
        outputs.setdefault("principalId", f"principal-of-{name}")
        outputs.setdefault("clientId", f"client-of-{name}")
    if typ == "azure-native:containerservice:ManagedCluster":
        outputs.setdefault("name", inputs.get("resourceName", name))
        outputs.setdefault(
            "oidcIssuerProfile", {"enabled": True, "issuerUrl": f"https://oidc.mock/{name}/"}
        )
        routing = dict((outputs.get("ingressProfile") or {}).get("webAppRouting") or {})
        routing.setdefault("identity", {"objectId": f"app-routing-of-{name}"})
        outputs["ingressProfile"] = {"webAppRouting": routing}
    if typ == "aws:eks/cluster:Cluster":
        outputs.setdefault("identities", [{"oidcs": [{"issuer": f"https://oidc.mock/{name}"}]}])
        outputs.setdefault("endpoint", f"https://{name}.eks.mock")
        outputs.setdefault("certificateAuthority", {"data": "bW9jay1jYQ=="})
    if typ == "aws:route53/zone:Zone":
        outputs.setdefault("zoneId", f"Z-{name}")
    if typ == "azure-native:keyvault:Vault":
        outputs.setdefault("name", inputs.get("vaultName", name))
        outputs.setdefault(
            "id",
            f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/"
            f"{inputs.get('resourceGroupName')}/providers/Microsoft.KeyVault/vaults/"
            f"{inputs.get('vaultName')}",
        )
    return outputs


def mock_call(token: str) -> dict[str, Any]:
    if token == "azure-native:containerservice:listManagedClusterUserCredentials":
        kubeconfig = base64.b64encode(b"apiVersion: v1\nkind: Config\n").decode()
        return {"kubeconfigs": [{"name": "clusterUser", "value": kubeconfig}]}
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": MOCK_AWS_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_AWS_ACCOUNT}:user/admin"}
    if token == "azure-native:authorization:getClientConfig":
        return {
            "subscriptionId": MOCK_SUBSCRIPTION,
            "tenantId": MOCK_TENANT,
            "objectId": "",
            "clientId": "",
        }
    return {}


class _Mocks(pulumi.runtime.Mocks):
    """Offline mocks. With `unknowns`, a new resource's outputs are only its inputs, as in a
    real preview of a resource that does not exist yet: ids, ARNs and principal ids stay
    unknown, so the program must not depend on their values to plan."""

    def __init__(self, unknowns: bool = False) -> None:
        self.unknowns = unknowns

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if self.unknowns:
            return None, dict(args.inputs)
        outputs = mock_outputs(args.typ, args.name, args.inputs)
        return outputs.pop("id", f"{args.name}-id"), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return mock_call(args.token), []


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's raw inputs and parent."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.rendered: list[RenderedResource] = []
        self.invokes: list[tuple[str, str]] = []  # (token, provider reference)

    def Invoke(self, request: Any) -> Any:
        self.invokes.append((request.tok, request.provider))
        return super().Invoke(request)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            self.rendered.append(
                RenderedResource(
                    type=request.type,
                    name=request.name,
                    inputs=plain(raw),
                    urn=response.urn,
                    parent_urn=request.parent or None,
                    custom=request.custom,
                    provider=request.provider or None,
                    dependencies=list(request.dependencies),
                )
            )
        return response


def render_program(
    program: Callable[[], object],
    *,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str] | None = None,
    project: str = PROJECT,
    mocks: pulumi.runtime.Mocks | None = None,
    preview: bool = False,
    invokes: list[tuple[str, str]] | None = None,
) -> list[RenderedResource]:
    """Run `program` under `mocks` (default: offline mocks) with `config` (the CLI's string map).

    `preview=True` runs with the engine's preview semantics (outputs a provider computes may be
    unknown). `invokes` (when given) receives every (token, provider) the program invoked.
    Resources come back sorted by (type, name).
    """
    with _LOCK:
        for var in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN", "PULUMI_CONFIG"):
            os.environ.pop(var, None)
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_all_config(dict(config), list(secret_keys or []))
        monitor = _RecordingMonitor(mocks or _Mocks())
        pulumi.runtime.set_mocks(
            monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor
        )
        try:
            pulumi.runtime.test(program)()
        finally:
            pulumi_settings.ROOT.set(None)
        resources = list(monitor.rendered)
        if invokes is not None:
            invokes.extend(monitor.invokes)
    return sorted(resources, key=lambda r: (r.type, r.name))


def render_stack(
    stack: str,
    *,
    config_overrides: dict[str, str] | None = None,
    project_dir: Path = REPO_ROOT,
    preview: bool = True,
) -> list[RenderedResource]:
    """Render `Pulumi.<stack>.yaml` through the project's `__main__.py` under mocks.

    `preview=True` (the default, what `stacks.preview` shows): the engine's preview semantics,
    every output a provider computes is unknown ("[unknown]" in the inputs that use it).
    `preview=False`: the values of an `up`, with mock ids, ARNs and principal ids.
    """
    values, secret = stack_config(stack, config_overrides=config_overrides, project_dir=project_dir)
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    main = project_dir / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    return render_program(
        program,
        stack=stack,
        config=values,
        secret_keys=secret,
        mocks=_Mocks(unknowns=preview),
        preview=preview,
    )
