"""Offline preview of a platform stack: render under mocks, validate manifests, run the pack.

    python -m platform_stack.preview --stack staging

Exit 0 when the program renders with no schema error and no mandatory violation, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from platform_stack.settings import PROJECT, PROJECT_DIR
from stacktools.preview import POLICY_PACK, REPO_ROOT, manifest_of, validate_manifest
from stacktools.render import RenderedResource, render_program, stack_config


def render(stack: str, project_dir: Path = PROJECT_DIR) -> list[RenderedResource]:
    from platform_stack.program import main

    config, secret = stack_config(stack, project_dir=project_dir)
    return render_program(main, stack=stack, config=config, secret_keys=secret, project=PROJECT)


def problems(stack: str, resources: list[RenderedResource]) -> list[str]:
    found = []
    for resource in resources:
        manifest = manifest_of(resource)
        if manifest is not None:
            errors, _ = validate_manifest(manifest)
            found += [f"{resource.type} {resource.name}: {e}" for e in errors]
    from stacktools.policy_run import run_policy_pack

    pack = (REPO_ROOT / POLICY_PACK).parent
    for v in run_policy_pack(resources, stack=stack, project=PROJECT, pack_dir=pack):
        # the pack's stack-level rules (alerts, the health probe) are about the service stack;
        # every rule about a resource applies here too
        if v.level == "mandatory" and v.resource:
            found.append(f"policy {v.policy}: {v.message}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_stack.preview")
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    resources = render(args.stack)
    found = problems(args.stack, resources)
    print(f"{PROJECT}/{args.stack}: {len(resources)} resources")
    for line in found:
        print(f"  {line}")
    print("OK" if not found else f"FAILED: {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
