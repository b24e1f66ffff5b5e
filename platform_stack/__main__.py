"""Entry point of the `flowchat-platform` Pulumi project (run from this folder)."""

import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # the repo: stacks/, platform_stack/

from platform_stack.program import main

main()
