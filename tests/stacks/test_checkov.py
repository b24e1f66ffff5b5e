"""checkov (kubernetes framework, offline) over both stacks' rendered manifests.

Only the checks listed in stacktools.checkov_skips are skipped, each with a written reason;
anything else checkov reports fails the test with the check id and resource. checkov runs from
its own virtualenv (scripts/checkov.sh: it pins packaging<24, pulumi needs >=26).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from stacks_testlib import ROOT

from stacks.render import render_stack
from stacktools.checkov_skips import SKIPS

STACKS = ("staging", "prod")
# what the deploy workflow delivers at `pulumi up`: the app image by the digest it pushed
# (any sha256 stands in for it here; Redis carries its own in stacks/images.py)
DEPLOYED_IMAGE = json.dumps(
    {
        "repository": "ghcr.io/flowchat/flowchat",
        "tag": "sha256:" + hashlib.sha256(b"the image the build job pushed").hexdigest(),
    }
)


def _run_checkov(directory: Path, skips: list[str]) -> dict:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    cmd = ["bash", str(ROOT / "scripts" / "checkov.sh"), "-d", str(directory)]
    cmd += ["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "-o", "json"]
    if skips:
        cmd += ["--skip-check", ",".join(skips)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("manifests")
    for stack in STACKS:
        for r in render_stack(stack, config_overrides={"image": DEPLOYED_IMAGE}):
            if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs:
                m = r.inputs
                path = root / stack / f"{m['kind']}-{m['metadata']['name']}.yaml"
                path.parent.mkdir(exist_ok=True)
                path.write_text(yaml.safe_dump(m))
    return root


def test_every_skip_has_a_reason() -> None:
    for check, reason in SKIPS.items():
        assert check.startswith("CKV") and len(reason) > 40, check


def test_images_by_digest_are_not_skipped() -> None:
    """CKV_K8S_43 (image by digest) is checked, not skipped: every image has a digest."""
    assert "CKV_K8S_43" not in SKIPS


def test_checkov_passes_both_stacks_with_only_the_listed_skips(manifests: Path) -> None:
    report = _run_checkov(manifests, sorted(SKIPS))
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 300
    # both stacks were scanned (checkov also counts containers as resources)
    assert report["summary"]["resource_count"] >= len(list(manifests.rglob("*.yaml")))
