"""docs/runbook.md: one section per alert anchor, and every command it names exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from stacks.alerts import RUNBOOK_ANCHORS

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


ANCHORS = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", RUNBOOK, flags=re.M)}


def test_every_alert_has_a_section() -> None:
    missing = set(RUNBOOK_ANCHORS.values()) - ANCHORS
    assert not missing, f"runbook sections missing for anchors: {sorted(missing)}"


def test_every_internal_link_resolves() -> None:
    links = set(re.findall(r"\]\(#([\w-]+)\)", RUNBOOK))
    assert links, "the runbook links its sections"
    assert links <= ANCHORS, sorted(links - ANCHORS)


def test_every_ops_command_named_exists() -> None:
    modules = set(re.findall(r"python -m ((?:ops|stacks)\.\w+)", RUNBOOK))
    assert {"ops.smoke", "ops.queue", "ops.worker", "ops.rotate_credentials"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_every_workflow_named_exists() -> None:
    named = set(re.findall(r'workflow "([\w-]+)"', RUNBOOK))
    assert named
    for name in named:
        assert (ROOT / ".github" / "workflows" / f"{name}.yml").is_file(), name


def test_restart_worker_is_answerable_from_one_section() -> None:
    section = RUNBOOK.split("### How to restart the worker", 1)[1].split("\n### ", 1)[0]
    assert "python -m ops.worker restart" in section
    assert "docker compose restart worker" in section


def section(heading: str) -> str:
    """The text under a heading line (e.g. "### Rotate Flow credentials") up to the next one."""
    return re.split(r"\n#{1,6} ", RUNBOOK.split(f"{heading}\n", 1)[1], maxsplit=1)[0]


def test_rotation_says_the_first_rotation_must_set_the_admin_token() -> None:
    text = " ".join(section("### Rotate Flow credentials").split())
    assert "First rotation after a fresh `pulumi up`" in text
    assert "must therefore set `ADMIN_TOKEN`" in text


def test_monitoring_says_alerts_route_per_rule() -> None:
    from policies.runbook import rules

    text = " ".join(section("## Monitoring").split())
    assert "`notificationSettings.contactPoint`" in text and "**no** org-wide" in text
    assert "`stack=STACK`" in text
    (routing,) = [r for r in rules.RULES if r.name == "alert-routing"]
    assert "notificationSettings.contactPoint" in routing.description
    assert "no org-wide NotificationPolicy" in routing.description
