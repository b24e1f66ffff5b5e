"""Fixtures of tests/policies: no PULUMI_* environment (the analyzer would reconfigure the
runtime from it, see FINDINGS "pulumi-policy without the CLI")."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_pulumi_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in [v for v in os.environ if v.startswith("PULUMI_")]:
        monkeypatch.delenv(var)
    yield
