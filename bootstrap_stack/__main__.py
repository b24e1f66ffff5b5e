"""Entry point of the `flowchat-bootstrap` Pulumi project (run from this folder)."""

import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # the repo: stacks/, bootstrap_stack/

from bootstrap_stack.program import main

main()
