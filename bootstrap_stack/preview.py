"""Offline preview of the bootstrap stack: render under mocks and run the policy pack.

python -m bootstrap_stack.preview
"""

from __future__ import annotations

import sys
from pathlib import Path

from bootstrap_stack.settings import PROJECT
from stacktools.preview import POLICY_PACK, REPO_ROOT
from stacktools.render import RenderedResource, render_program, stack_config

PROJECT_DIR = Path(__file__).resolve().parent
STACK = "main"


def render(overrides: dict[str, str] | None = None) -> list[RenderedResource]:
    from bootstrap_stack.program import main

    config, secret = stack_config(STACK, project_dir=PROJECT_DIR)
    config.setdefault(f"{PROJECT}:smokeApiKey", "[secret]")  # secret config, never committed
    config.update(overrides or {})
    return render_program(
        main,
        stack=STACK,
        config=config,
        secret_keys=[*secret, f"{PROJECT}:smokeApiKey"],
        project=PROJECT,
    )


def problems(resources: list[RenderedResource]) -> list[str]:
    from stacktools.policy_run import run_policy_pack

    pack = (REPO_ROOT / POLICY_PACK).parent
    return [
        f"policy {v.policy}: {v.message}"
        for v in run_policy_pack(resources, stack=STACK, project=PROJECT, pack_dir=pack)
        if v.level == "mandatory" and v.resource  # stack-level rules are the service's
    ]


def main() -> int:
    resources = render()
    found = problems(resources)
    print(f"{PROJECT}/{STACK}: {len(resources)} resources")
    for line in found:
        print(f"  {line}")
    print("OK" if not found else f"FAILED: {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
