"""Secrets: Flow credentials and the admin token reach pods only from the secret manager.

(Not `secrets.py`: the Pulumi CLI puts the pack directory on sys.path, where that name would
shadow the standard library's `secrets`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from . import thresholds
from .common import (
    CONFIG_MAP,
    SECRET,
    WORKLOADS,
    _get,
    containers,
    k8s_name,
    pod_spec,
)


def _env_problems(kind: str, name: str, spec: Mapping[str, Any]) -> list[str]:
    problems = []
    for container in containers(spec):
        for env in container.get("env") or []:
            if not isinstance(env, Mapping) or env.get("name") not in thresholds.SECRET_KEYS:
                continue
            where = f"{kind} {name}: container {container.get('name')} env {env['name']}"
            if "value" in env:
                problems.append(
                    f"{where} is a literal value; it must come from the secret manager "
                    "(valueFrom.secretKeyRef to the ExternalSecret's Secret "
                    f"{thresholds.EXTERNAL_SECRET})"
                )
            elif _get(env, "valueFrom", "configMapKeyRef") is not None:
                problems.append(
                    f"{where} is read from a ConfigMap; use the ExternalSecret's Secret"
                )
            elif (ref := _get(env, "valueFrom", "secretKeyRef")) is not None:
                secret = _get(ref, "name")
                if secret != thresholds.EXTERNAL_SECRET:
                    problems.append(
                        f"{where} is read from Secret {secret or '(unnamed)'}; it must come from "
                        f"the ExternalSecret's Secret {thresholds.EXTERNAL_SECRET} (the secret "
                        "manager), not from a Secret made by hand"
                    )
    return problems


def validate_flow_credentials(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Flow credentials and the admin token reach pods only from the secret manager."""
    name = k8s_name(args.props, args.name)
    if args.resource_type in WORKLOADS:
        spec = pod_spec(args.resource_type, args.props)
        for problem in _env_problems(WORKLOADS[args.resource_type], name, spec):
            report(problem, None)
    elif args.resource_type in {CONFIG_MAP, SECRET}:
        kind = "ConfigMap" if args.resource_type == CONFIG_MAP else "Secret"
        for section in ("data", "binaryData", "stringData"):
            keys = sorted(set(args.props.get(section) or {}) & set(thresholds.SECRET_KEYS))
            for key in keys:
                report(
                    f"{kind} {name}: {section} holds {key} literally; Flow credentials and the "
                    "admin token come only from the secret manager through the ExternalSecret",
                    None,
                )
