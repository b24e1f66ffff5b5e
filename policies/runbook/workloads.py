"""Workloads: Redis and Chroma on persistent volumes, and the container baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

from . import thresholds
from .common import (
    DEPLOYMENT,
    INGRESS,
    STATEFUL_SET,
    WORKLOADS,
    _get,
    _is,
    containers,
    k8s_name,
    pod_spec,
)


def validate_persistent_volumes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Redis and Chroma keep their data on a volumeClaimTemplate of a StatefulSet."""
    if args.resource_type not in WORKLOADS:
        return
    which = [w for w in ("redis", "chroma") if _is(args.props, args.name, w)]
    if not which:
        return
    what = which[0].capitalize()
    kind = WORKLOADS[args.resource_type]
    name = k8s_name(args.props, args.name)
    if args.resource_type != STATEFUL_SET:
        report(
            f"{what} runs as {kind} {name}: it must be a StatefulSet with a volumeClaimTemplate "
            "so its data survives restarts",
            None,
        )
        return
    templates = [
        str(_get(t, "metadata", "name"))
        for t in _get(args.props, "spec", "volumeClaimTemplates") or []
    ]
    spec = pod_spec(args.resource_type, args.props)
    empty_dirs = {
        str(v.get("name"))
        for v in spec.get("volumes") or []
        if isinstance(v, Mapping) and "emptyDir" in v
    }
    mounts = [
        (str(m.get("name")), str(m.get("mountPath")))
        for c in containers(spec)
        for m in c.get("volumeMounts") or []
        if isinstance(m, Mapping)
    ]
    for volume, path in mounts:
        if volume in empty_dirs and not path.startswith("/tmp"):
            report(
                f"{what} StatefulSet {name}: volume {volume} mounted at {path} is an emptyDir; "
                "data must live on a volumeClaimTemplate",
                None,
            )
    if not templates:
        report(f"{what} StatefulSet {name}: no volumeClaimTemplates (found none, need 1)", None)
    elif not any(volume in templates for volume, _ in mounts):
        report(
            f"{what} StatefulSet {name}: no container mounts the volumeClaimTemplate "
            f"{', '.join(templates)}",
            None,
        )


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in {"", "latest"}


def validate_container_baseline(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Containers run as non-root, with CPU and memory limits and a pinned image tag."""
    if args.resource_type not in WORKLOADS:
        return
    kind = WORKLOADS[args.resource_type]
    name = k8s_name(args.props, args.name)
    spec = pod_spec(args.resource_type, args.props)
    pod_non_root = _get(spec, "securityContext", "runAsNonRoot") is True
    for container in containers(spec):
        where = f"{kind} {name}: container {container.get('name')}"
        non_root = _get(container, "securityContext", "runAsNonRoot")
        if not (non_root is True or (pod_non_root and non_root is not False)):
            report(f"{where} does not set runAsNonRoot: true (pod or container)", None)
        limits = _get(container, "resources", "limits") or {}
        missing = [r for r in ("cpu", "memory") if r not in limits]
        if missing:
            report(f"{where} has no {' or '.join(missing)} limit", None)
        image = str(container.get("image") or "")
        if not _pinned(image):
            report(f"{where} image {image or '(none)'} is not pinned to a version tag", None)


def _ingress_backends(props: Mapping[str, Any]) -> set[str]:
    """Service names an Ingress routes to (default backend and every path)."""
    names = {_get(props, "spec", "defaultBackend", "service", "name")}
    for rule in _get(props, "spec", "rules") or []:
        for path in _get(rule, "http", "paths") or []:
            names.add(_get(path, "backend", "service", "name"))
    return {str(n) for n in names if n}


def _key_source(spec: Mapping[str, Any]) -> str | None:
    """How the API container gets its keys: "API_KEYS_FILE" (a path inside a mounted Secret
    volume), "API_KEYS" (secretKeyRef), or None."""
    secret_volumes = {
        str(v.get("name"))
        for v in spec.get("volumes") or []
        if isinstance(v, Mapping) and ("secret" in v or "projected" in v or "csi" in v)
    }
    for container in containers(spec):
        env = {e.get("name"): e for e in container.get("env") or [] if isinstance(e, Mapping)}
        path = _get(env.get(thresholds.API_KEYS_FILE_ENV), "value")
        if path:
            for mount in container.get("volumeMounts") or []:
                root = str(_get(mount, "mountPath") or "").rstrip("/")
                inside = path == root or str(path).startswith(root + "/")
                if _get(mount, "name") in secret_volumes and root and inside:
                    return thresholds.API_KEYS_FILE_ENV
        if _get(env.get(thresholds.API_KEYS_ENV), "valueFrom", "secretKeyRef") is not None:
            return thresholds.API_KEYS_ENV
    return None


def _anonymous(spec: Mapping[str, Any]) -> bool:
    return any(
        str(_get(e, "value") or "").strip().lower() in {"true", "1", "yes", "on"}
        for c in containers(spec)
        for e in c.get("env") or []
        if isinstance(e, Mapping) and e.get("name") == thresholds.ALLOW_ANONYMOUS_CHAT_ENV
    )


def validate_api_key_source(args: StackValidationArgs, report: ReportViolation) -> None:
    """A stack whose Ingress exposes the API gives the API Deployment a key source (API_KEYS_FILE
    in a mounted Secret, or API_KEYS from a secretKeyRef) and never ALLOW_ANONYMOUS_CHAT=true."""
    api = thresholds.API_DEPLOYMENT
    exposing = [
        r
        for r in args.resources
        if r.resource_type == INGRESS and api in _ingress_backends(r.props)
    ]
    if not exposing:
        args.not_applicable(f"no Ingress routes to the Service {api}")
    ingress = k8s_name(exposing[0].props, exposing[0].name)
    deployments = [
        r
        for r in args.resources
        if r.resource_type == DEPLOYMENT and k8s_name(r.props, r.name) == api
    ]
    if not deployments:
        report(f"Ingress {ingress} exposes {api}, but the stack has no Deployment {api}", None)
    for deployment in deployments:
        spec = pod_spec(deployment.resource_type, deployment.props)
        if _key_source(spec) is None:
            report(
                f"Deployment {api} is exposed by Ingress {ingress} but has no API key source: "
                f"set {thresholds.API_KEYS_FILE_ENV} to a file in a mounted Secret volume (e.g. "
                f"{thresholds.API_KEYS_FILE_IN_POD}) or {thresholds.API_KEYS_ENV} from a "
                "secretKeyRef",
                deployment.urn,
            )
        if _anonymous(spec):
            report(
                f"Deployment {api} is exposed by Ingress {ingress} and sets "
                f"{thresholds.ALLOW_ANONYMOUS_CHAT_ENV}=true: anyone on the internet could chat "
                "on the stack's Flow credentials",
                deployment.urn,
            )
