"""The committed ESC definitions (deploy/esc/flowchat-<stack>.yaml), read in one place.

Each definition imports `flowchat/<stack>-ids`, an environment the bootstrap program writes
(`values: {ids: {...}}`), and refers to its values as `${ids.NAME}`; it reads the deploy-time
secrets from the cloud's secret manager under the names in its `get:` block, which the bootstrap
program writes from its secret config. Bootstrap, the first-run test and preflight all derive
those names and ids from the committed file through this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ESC_DIR = REPO_ROOT / "deploy" / "esc"
IDS = "ids"  # the top-level key of the ids environment's values
_ID_REF = re.compile(r"\$\{" + IDS + r"\.([A-Za-z0-9_]+)\}")
# the secret manager block of each cloud's definition: (path to its `get:`, the name field)
SECRET_BLOCKS = {
    "azure": (("azure", "secrets", "fn::open::azure-secrets", "get"), "name"),
    "aws": (("aws", "secrets", "fn::open::aws-secrets", "get"), "secretId"),
}


def definition_path(environment: str, esc_dir: Path = ESC_DIR) -> Path:
    """`staging` -> deploy/esc/flowchat-staging.yaml."""
    return esc_dir / f"flowchat-{environment}.yaml"


def load_definition(environment: str, esc_dir: Path = ESC_DIR) -> dict[str, Any]:
    return yaml.safe_load(definition_path(environment, esc_dir).read_text()) or {}


def ids_environment(environment: str) -> str:
    """The environment (PROJECT/NAME) of bootstrap's ids for `environment`."""
    return f"{ESC_PROJECT}/{environment}-ids"


def ids_document(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ids environment's definition as bootstrap writes it."""
    return {"values": {IDS: dict(values)}}


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def id_references(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every `${ids.NAME}` the definition reads: NAME -> the key paths that read it."""
    refs: dict[str, list[str]] = {}
    for path, text in _strings(doc.get("values") or {}, "values"):
        for name in _ID_REF.findall(text):
            refs.setdefault(name, []).append(path)
    return refs


def resolve_ids(value: str, ids: Mapping[str, Any]) -> str:
    """`value` with each `${ids.NAME}` replaced by the id (KeyError naming NAME when absent)."""
    return _ID_REF.sub(lambda m: str(ids[m.group(1)]), value)


def is_id_only(value: str) -> bool:
    """True when `value` is made of `${ids.*}` references alone (not a secret)."""
    return bool(_ID_REF.search(value)) and not _ID_REF.sub("", value).strip()


def deploy_secret_names(environment: str, cloud: str, esc_dir: Path = ESC_DIR) -> dict[str, str]:
    """What the definition reads from the secret manager: its `get:` key -> the secret's name."""
    path, field = SECRET_BLOCKS[cloud]
    node: Any = load_definition(environment, esc_dir).get("values") or {}
    for part in path:
        node = (node or {}).get(part) or {}
    return {str(key): str(entry[field]) for key, entry in node.items()}


# --- the OIDC token ESC's login presents (Pulumi ESC docs, guides/configuring-oidc) -------------
ESC_PROJECT = "flowchat"  # the ESC project of the committed definitions: flowchat/<stack>
# where each cloud's login block keeps its subjectAttributes
LOGIN_ATTRIBUTES = {
    "azure": ("azure", "login", "fn::open::azure-login", "subjectAttributes"),
    "aws": ("aws", "login", "fn::open::aws-login", "oidc", "subjectAttributes"),
}
# With subjectAttributes the subject is this prefix plus `:<attribute>:<value>` per attribute, in
# order. Without them it is `...:env:<project>/<name>`, but a stack's `pulumi up` presents
# `...:env:<yaml>` instead (pulumi/pulumi#14509), so the definitions must set them.
SUBJECT_PREFIX = "pulumi:environments:pulumi.organization.login:{organization}"
# attributes whose value is fixed for a given environment (rootEnvironment.name changes with who
# imports it, pulumi.user.login with who opens it: a trust could not name them in advance)
FIXED_ATTRIBUTES = ("currentEnvironment.name", "pulumi.organization.login")


def environment_name(environment: str) -> str:
    """`staging` -> `flowchat/staging` (PROJECT/NAME in Pulumi Cloud)."""
    return f"{ESC_PROJECT}/{environment}"


def subject_attributes(doc: Mapping[str, Any], cloud: str) -> list[str]:
    node: Any = doc.get("values") or {}
    for part in LOGIN_ATTRIBUTES[cloud]:
        node = (node or {}).get(part) if isinstance(node, dict) else None
    return [str(a) for a in node or []]


def oidc_subject(doc: Mapping[str, Any], cloud: str, organization: str, environment: str) -> str:
    """The `sub` of the token the definition of `environment` presents to `cloud` on opening."""
    attributes = subject_attributes(doc, cloud)
    if not attributes:
        raise ValueError(
            f"{environment}: the {cloud} login sets no subjectAttributes; `pulumi up` would "
            "present the subject ...:env:<yaml> (pulumi/pulumi#14509)"
        )
    values = {
        "currentEnvironment.name": environment_name(environment),
        "pulumi.organization.login": organization,
    }
    unfixed = [a for a in attributes if a not in FIXED_ATTRIBUTES]
    if unfixed:
        raise ValueError(f"{environment}: subjectAttributes {unfixed} vary per opening")
    parts = [SUBJECT_PREFIX.format(organization=organization)]
    parts += [f"{a}:{values[a]}" for a in attributes]
    return ":".join(parts)


def oidc_audience(cloud: str, organization: str) -> str:
    """The `aud` of ESC's token for an environment outside the legacy `default` project."""
    return f"{cloud}:{organization}"


__all__ = [
    "ESC_DIR",
    "ESC_PROJECT",
    "IDS",
    "definition_path",
    "deploy_secret_names",
    "environment_name",
    "id_references",
    "ids_document",
    "ids_environment",
    "is_id_only",
    "load_definition",
    "oidc_audience",
    "oidc_subject",
    "resolve_ids",
    "subject_attributes",
]
