"""The `flowchat-runbook` policy pack, as the Pulumi CLI runs it:

    pulumi preview --policy-pack policies/

The CLI starts `python -m pulumi.policy <engine> policies/`, which runs this file with only this
directory on sys.path: the rules live in the package `runbook` next to it (tests import it as
`policies.runbook`), which imports nothing outside this directory, so the pack publishes as is
(`pulumi policy publish policies/`). `PolicyPack(...)` serves gRPC and blocks forever, so it is
built only when run.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack

try:
    from runbook.rules import PACK_NAME, policies  # the CLI: this directory is on sys.path
except ImportError:  # `python -m policies` from the repository root
    from policies.runbook.rules import PACK_NAME, policies

if __name__ == "__main__":
    PolicyPack(
        name=PACK_NAME,
        policies=policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
        description="flowchat runbook guardrails: health probes, alert thresholds and routing, "
        "persistent volumes, secrets from the secret manager",
    )
