"""Offline checks shared by the platform and bootstrap previews: manifest schemas and the
policy pack's rules about resources (its stack-level rules are about the service stack)."""

from __future__ import annotations

from stacktools.preview import POLICY_PACK, REPO_ROOT, manifest_of, validate_manifest
from stacktools.render import RenderedResource


def mandatory_problems(resources: list[RenderedResource], *, stack: str, project: str) -> list[str]:
    found = []
    for resource in resources:
        manifest = manifest_of(resource)
        if manifest is not None:
            errors, _ = validate_manifest(manifest)
            found += [f"{resource.type} {resource.name}: {e}" for e in errors]
    from stacktools.policy_run import run_policy_pack

    pack = (REPO_ROOT / POLICY_PACK).parent
    for v in run_policy_pack(resources, stack=stack, project=project, pack_dir=pack):
        if v.level == "mandatory" and v.resource:
            found.append(f"policy {v.policy}: {v.message}")
    return found


def print_outcome(title: str, resources: list[RenderedResource], found: list[str]) -> int:
    """Print the result of a preview; the exit status (1 when anything was found)."""
    print(f"{title}: {len(resources)} resources")
    for line in found:
        print(f"  {line}")
    print("OK" if not found else f"FAILED: {len(found)} problem(s)")
    return 1 if found else 0
