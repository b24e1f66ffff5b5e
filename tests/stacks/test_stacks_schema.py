"""stacks/preview.py validation: every rendered manifest is valid for Kubernetes 1.33 (strict)."""

from __future__ import annotations

import copy

import pytest
from stacks_testlib import COMBOS

from stacks.preview import validate_manifest

CUSTOM_KINDS = {
    "ScaledObject",
    "SecretStore",
    "ExternalSecret",
    "ServiceMonitor",
    "TriggerAuthentication",
}


@pytest.mark.parametrize(("stack", "cloud"), COMBOS)
def test_every_manifest_is_schema_valid(rendered: dict, stack: str, cloud: str) -> None:
    manifests = rendered[(stack, cloud)].manifests()
    assert len(manifests) >= 18
    for manifest in manifests:
        errors, builtin = validate_manifest(manifest)
        assert errors == [], (manifest["kind"], manifest["metadata"]["name"], errors)
        assert builtin == (manifest["kind"] not in CUSTOM_KINDS), manifest["kind"]


def test_validation_catches_unknown_fields_and_missing_names(rendered: dict) -> None:
    deployment = next(m for m in rendered[("prod", "aws")].manifests() if m["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    errors, builtin = validate_manifest(broken)
    assert builtin and errors and "imagePullPolcy" in errors[0]
    scaler = next(m for m in rendered[("prod", "aws")].manifests() if m["kind"] == "ScaledObject")
    nameless = copy.deepcopy(scaler)
    del nameless["metadata"]["name"]
    assert validate_manifest(nameless) == (["metadata.name missing"], False)
