"""The pack over loopback gRPC, launched the way the Pulumi CLI launches it (stacks.policy_run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policies_testlib import rendered

from stacks.policy_run import PolicyPackError, run_policy_pack

PACK = Path(__file__).resolve().parents[2] / "policies"


def test_pack_served_like_the_cli_reports_violations_and_takes_config() -> None:
    resources = rendered("staging", **{"thresholds.queueDepth": "50"})
    config = {
        "chat-latency-alert": {"maxP95Seconds": 5},  # tighter than the stack's 10 s
        "queue-depth-alert": "advisory",
    }
    violations = run_policy_pack(resources, stack="staging", pack_dir=PACK, config=config)
    found = sorted((v.policy, v.level, v.message) for v in violations)
    assert found == [
        (
            "chat-latency-alert",
            "mandatory",
            "P95 chat-latency alert FlowchatChatLatencyP95High in RuleGroup flowchat-monitoring: "
            "threshold 10s exceeds the runbook's bound 5s",
        ),
        (
            "queue-depth-alert",
            "advisory",
            "queue-depth alert FlowchatQueueBacklog in RuleGroup flowchat-monitoring: threshold 50 "
            "exceeds the runbook's bound 20",
        ),
    ]
    group = next(r for r in resources if r.name == "flowchat-rules-monitoring")
    assert {v.resource for v in violations} == {group.urn}


def test_unknown_policy_config_is_refused() -> None:
    with pytest.raises(PolicyPackError, match="unknown policies: no-such-policy"):
        run_policy_pack(
            rendered("staging"), stack="staging", pack_dir=PACK, config={"no-such-policy": {}}
        )
