"""Fixtures of tests/stacks: both stacks on both clouds, rendered once per session (mocks)."""

from __future__ import annotations

import pytest
from stacks_testlib import CLOUD_OVERRIDES, COMBOS, Rendered, render_components


@pytest.fixture(scope="session")
def rendered() -> dict[tuple[str, str], Rendered]:
    return {
        (stack, cloud): Rendered(stack, cloud, render_components(stack, CLOUD_OVERRIDES[cloud]))
        for stack, cloud in COMBOS
    }
