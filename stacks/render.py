"""Moved to `stacktools.render` (offline tooling lives outside the components' package).

This alias keeps `stacks.render` imports (policies, ops, tests) working: it is the same module.
"""

import sys

from stacktools import render as _moved

sys.modules[__name__] = _moved
