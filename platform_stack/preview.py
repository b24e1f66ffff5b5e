"""Offline preview of a platform stack: render under mocks, validate manifests, run the pack.

    python -m platform_stack.preview --stack staging

Exit 0 when the program renders with no schema error and no mandatory violation, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from platform_stack.settings import PROJECT, PROJECT_DIR
from stacktools.program_preview import mandatory_problems, print_outcome
from stacktools.render import RenderedResource, render_program, stack_config


def render(stack: str, project_dir: Path = PROJECT_DIR) -> list[RenderedResource]:
    from platform_stack.program import main

    config, secret = stack_config(stack, project_dir=project_dir)
    return render_program(main, stack=stack, config=config, secret_keys=secret, project=PROJECT)


def problems(stack: str, resources: list[RenderedResource]) -> list[str]:
    return mandatory_problems(resources, stack=stack, project=PROJECT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m platform_stack.preview")
    parser.add_argument("--stack", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resources = render(args.stack)
    return print_outcome(f"{PROJECT}/{args.stack}", resources, problems(args.stack, resources))


if __name__ == "__main__":
    sys.exit(main())
