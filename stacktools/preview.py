"""Offline preview of a stack: render under Pulumi mocks, validate manifests, run the policy pack.

    python -m stacktools.preview --stack staging [--json FILE] [--set thresholds.queueDepth=15 ...]
    (alias: python -m stacks.preview, same arguments)

Exit status: 0 clean (advisory violations allowed), 1 schema errors or mandatory violations,
2 bad arguments or configuration (the message names the key). In the JSON report a schema error
is a violation `{"policy": "kubernetes-schema", "level": "mandatory", "message", "resource"}`.

Built-in Kubernetes kinds are validated with kubernetes-validate (schema of Kubernetes
KUBERNETES_VERSION, strict: unknown fields are errors). Custom resources (ScaledObject,
SecretStore, ExternalSecret, Probe, ...) have no schema there: only apiVersion, kind and
metadata.name are checked, and the summary says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate

from stacks.config import ConfigError
from stacktools.render import (
    PROJECT,
    REPO_ROOT,
    RenderedResource,
    StackNotFoundError,
    Violation,
    render_stack,
    stack_config,
)

KUBERNETES_VERSION = "1.33.0"
POLICY_PACK = Path("policies") / "PulumiPolicy.yaml"


class PolicyPackError(RuntimeError):
    """The policy pack exists but could not be run."""


SCHEMA_POLICY = "kubernetes-schema"  # the `policy` of a schema error in the JSON violations


@dataclass
class SchemaError:
    resource: str  # "<type> <name>"
    message: str
    urn: str | None = None

    def violation(self) -> Violation:
        """The error as a mandatory violation of the JSON report (the PR check fails on it)."""
        return Violation(
            policy=SCHEMA_POLICY,
            level="mandatory",
            message=f"{self.resource}: {self.message}",
            resource=self.urn or self.resource,
        )


@dataclass
class PreviewResult:
    stack: str
    resources: list[RenderedResource]
    schema_errors: list[SchemaError] = field(default_factory=list)
    crd_checked: list[str] = field(default_factory=list)  # kinds checked for names only
    violations: list[Violation] = field(default_factory=list)
    policy_pack_ran: bool = False
    secret_keys: list[str] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def failed(self) -> bool:
        return bool(self.schema_errors or self.mandatory)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [
                {"type": r.type, "name": r.name, "inputs": r.inputs} for r in self.resources
            ],
            # schema errors first, as mandatory violations: consumers of the JSON (the PR check,
            # ops.preview_diff --fail-on-mandatory) see them like any other blocking finding
            "violations": [
                v.model_dump()
                for v in [*(e.violation() for e in self.schema_errors), *self.violations]
            ],
        }


def manifest_of(resource: RenderedResource) -> dict[str, Any] | None:
    """The Kubernetes object a pulumi-kubernetes resource declares (None for other resources)."""
    if not resource.type.startswith("kubernetes:") or "apiVersion" not in resource.inputs:
        return None
    return resource.inputs


def validate_manifest(manifest: dict[str, Any]) -> tuple[list[str], bool]:
    """(errors, is_builtin): schema errors of a built-in kind, or name checks of a custom one."""
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        errors = []
        for key in ("apiVersion", "kind"):
            if not isinstance(manifest.get(key), str) or not manifest.get(key):
                errors.append(f"{key} missing")
        name = (manifest.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            errors.append("metadata.name missing")
        return errors, False
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(root)"
        return [f"{path}: {exc.message}"], True
    return [], True


def run_preview(
    stack: str,
    *,
    overrides: dict[str, str] | None = None,
    project_dir: Path = REPO_ROOT,
) -> PreviewResult:
    """Render, validate and run the policy pack (if present). Raises ConfigError/StackNotFound."""
    _, secret_keys = stack_config(stack, config_overrides=overrides, project_dir=project_dir)
    resources = render_stack(stack, config_overrides=overrides, project_dir=project_dir)
    result = PreviewResult(stack=stack, resources=resources, secret_keys=secret_keys)
    crds: set[str] = set()
    for resource in resources:
        manifest = manifest_of(resource)
        if manifest is None:
            continue
        errors, builtin = validate_manifest(manifest)
        if not builtin:
            crds.add(f"{manifest.get('apiVersion')}/{manifest.get('kind')}")
        label = f"{resource.type} {resource.name}"
        result.schema_errors += [SchemaError(label, message, resource.urn) for message in errors]
    result.crd_checked = sorted(crds)
    pack = project_dir / POLICY_PACK
    if pack.exists():
        try:
            from stacktools.policy_run import run_policy_pack  # the other half of the contract
        except ImportError as exc:
            raise PolicyPackError(f"{POLICY_PACK} exists but the runner does not: {exc}") from exc

        result.violations = [
            v if isinstance(v, Violation) else Violation.model_validate(v, from_attributes=True)
            for v in run_policy_pack(resources, stack=stack, project=PROJECT, pack_dir=pack.parent)
        ]
        result.policy_pack_ran = True
    return result


def summary(result: PreviewResult, seconds: float) -> str:
    lines = [f"stack {result.stack}: {len(result.resources)} resources rendered in {seconds:.1f} s"]
    for type_, count in sorted(Counter(r.type for r in result.resources).items()):
        lines.append(f"  {count:3d}  {type_}")
    if result.secret_keys:
        lines.append("secret config replaced by placeholders: " + ", ".join(result.secret_keys))
    lines.append(
        f"schema (Kubernetes {KUBERNETES_VERSION}, strict): "
        + (f"{len(result.schema_errors)} error(s)" if result.schema_errors else "all valid")
    )
    for error in result.schema_errors:
        lines.append(f"  ERROR {error.resource}: {error.message}")
    if result.crd_checked:
        lines.append(
            "custom resources (no schema; apiVersion/kind/metadata.name only): "
            + ", ".join(result.crd_checked)
        )
    if not result.policy_pack_ran:
        lines.append(f"policy pack: not run ({POLICY_PACK} not found)")
    else:
        lines.append(f"policy pack: {len(result.violations)} violation(s)")
        for v in result.violations:
            where = f" [{v.resource}]" if v.resource else ""
            lines.append(f"  {v.level.upper():10s} {v.policy}{where}: {v.message}")
    verdict = "FAILED" if result.failed else "OK"
    lines.append(
        f"{verdict}: {len(result.schema_errors)} schema error(s), "
        f"{len(result.mandatory)} mandatory violation(s)"
    )
    return "\n".join(lines)


def _parse_set(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--set expects key=value (e.g. thresholds.queueDepth=15), got {item!r}")
        overrides[key.strip()] = value
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.preview",
        description=(
            "Render a flowchat stack offline (Pulumi mocks, Pulumi.<stack>.yaml, secure values as "
            "placeholders), validate its Kubernetes manifests and run the policy pack."
        ),
        epilog="Exit status: 0 ok, 1 schema errors or mandatory violations, 2 bad arguments "
        "or config.",
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. staging or prod")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override config like `pulumi config set [--path]`: cloud=aws, "
        "thresholds.queueDepth=15, 'thresholds={\"queueDepth\": 15}' (repeatable)",
    )
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = _parse_set(args.set, parser)
    started = time.perf_counter()
    try:
        result = run_preview(args.stack, overrides=overrides, project_dir=args.project_dir)
    except ConfigError as exc:
        print(f"stack {args.stack}: {exc}", file=sys.stderr)
        return 2
    except StackNotFoundError as exc:
        print(f"stack {args.stack}: {exc}", file=sys.stderr)
        return 2
    except PolicyPackError as exc:
        print(f"stack {args.stack}: {exc}", file=sys.stderr)
        return 1
    print(summary(result, time.perf_counter() - started))
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        print(f"JSON report written to {args.json}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
