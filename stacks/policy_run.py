"""Moved to `stacktools.policy_run` (offline tooling lives outside the components' package).

This alias keeps `stacks.policy_run` imports (policies, ops, tests) working: it is the same module.
"""

import sys

from stacktools import policy_run as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())  # type: ignore[attr-defined]
sys.modules[__name__] = _moved
