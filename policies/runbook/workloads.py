"""Workloads: Redis and Chroma on persistent volumes, and the container baseline."""

from __future__ import annotations

from collections.abc import Mapping

from pulumi_policy import ReportViolation, ResourceValidationArgs

from .common import (
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
