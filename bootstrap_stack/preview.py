"""Offline preview of the bootstrap stack: render under mocks and run the policy pack.

python -m bootstrap_stack.preview
"""

from __future__ import annotations

import sys
from pathlib import Path

from bootstrap_stack.settings import PROJECT
from stacktools.program_preview import mandatory_problems, print_outcome
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
    return mandatory_problems(resources, stack=STACK, project=PROJECT)


def main() -> int:
    resources = render()
    return print_outcome(f"{PROJECT}/{STACK}", resources, problems(resources))


if __name__ == "__main__":
    sys.exit(main())
