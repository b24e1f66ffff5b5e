"""Moved to `stacktools.preview`; `python -m stacks.preview` keeps working (CI, Makefile, docs).

As an import, `stacks.preview` is the same module as `stacktools.preview`.
"""

import sys

from stacktools import preview as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
