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


# --- issue 21 item 9: names and figures the runbook states are the stacks' own -------------


def test_grafana_names_are_the_real_titles() -> None:
    from stacks.monitoring import dashboard_title, folder_title

    text = " ".join(section("## On-call checklist").split())
    for stack in ("prod", "staging"):
        assert f'"{folder_title(stack)}"' in text
    assert f'dashboard "{dashboard_title("prod")}"' in text
    assert 'folder "flowchat",' not in text


def test_chunking_is_checked_on_the_ingestion_workers() -> None:
    from app.contracts import INGEST_WORKER_DEPLOYMENT

    text = " ".join(section("### Empty answers").split())
    assert f"get deployment {INGEST_WORKER_DEPLOYMENT} -o yaml" in text
    assert "get deployment flowchat-worker -o yaml" not in text
    assert "EMBEDDINGS_MODEL" not in RUNBOOK  # read by nothing: not a knob to check


def test_readiness_detail_says_it_needs_the_admin_token() -> None:
    """Through a port-forward: the Ingress does not route /api/health/* (stacks.routing)."""
    text = " ".join(section("### Flow errors").split())
    assert "port-forward svc/flowchat-api 8000:8000" in text
    assert '"Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8000/api/health/ready' in text
    assert "URL/api/health" not in RUNBOOK  # the public URL answers the controller's 404


def test_key_revocation_states_the_external_secret_refresh_interval() -> None:
    from stacks.secrets import REFRESH_INTERVAL

    text = " ".join(section("### Daily Flow tokens over budget").split())
    assert f"refresh interval of {REFRESH_INTERVAL}" in text
    assert "force-sync" in text


def test_no_command_assembles_a_redis_url() -> None:
    """Items 1-3: on-call never types a Redis URL (or port-forwards Redis by hand)."""
    assert "redis://127.0.0.1:6379" not in RUNBOOK
    assert "port-forward svc/flowchat-redis" not in RUNBOOK
    assert "if Redis is published" not in RUNBOOK
    assert "`REDIS_URL`" not in RUNBOOK  # no step has on-call point REDIS_URL at a stack
    keys = re.findall(r"python -m ops\.keys [^`\n]*", RUNBOOK)
    assert keys and all("--stack " in command for command in keys), keys


# --- issue 21: the runbook map -----------------------------------------------------------------


def _map_rows() -> list[list[str]]:
    text = section("## Runbook map")
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \|", line)]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_map_has_one_row_per_seed_runbook_line() -> None:
    """16 lines: 3 checklist items, 4 monitoring items, 4 troubleshooting rows, 3 runbooks,
    escalation tiers and the incident log (the seed runbook, ../shared/runbook.md)."""
    rows = _map_rows()
    assert [int(r[0]) for r in rows] == list(range(1, 17))
    assert all(len(r) == 6 for r in rows)


def test_every_test_alert_and_status_of_the_map_is_real() -> None:
    from stacks.alerts import ALERTS

    alert_names = set(ALERTS)
    counts = {"full": 0, "partial": 0, "missing": 0}
    for number, _line, _command, alert, tests, status in _map_rows():
        for name in re.findall(r"`(Flowchat\w+)`", alert):
            assert name in alert_names, f"row {number}: no alert {name}"
        for path, func in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", tests):
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {func}\(", source, re.M), f"row {number}: no {path}::{func}"
        kind = status.split(":", 1)[0]
        counts[kind] += 1
        if kind != "full":
            assert ":" in status, f"row {number}: say what is missing"
    stated = re.search(r"full (\d+), partial (\d+), missing (\d+)", section("## Runbook map"))
    assert stated and tuple(map(int, stated.groups())) == tuple(counts.values())


def _modules(text: str) -> set[str]:
    return set(re.findall(r"python -m ((?:ops|stacks)\.\w+)", text))


def test_every_command_the_runbook_documents_has_its_place_in_the_map() -> None:
    """A command added to the runbook (issue 22's `ops.access`, `ops.incident`) must be put in
    the row of the seed line it does, or be listed as beyond the seed runbook: a map that
    still calls that line partial or missing then shows in review, not only in a re-read."""
    mapped = set().union(*(_modules(command) for _n, _l, command, *_ in _map_rows()))
    beyond_line = re.search(
        r"^Commands beyond the seed runbook: (.+)$", section("## Runbook map"), re.M
    )
    assert beyond_line, "the map lists the commands no seed line asks for"
    beyond = set(re.findall(r"`((?:ops|stacks)\.\w+)`", beyond_line.group(1)))
    assert not mapped & beyond, f"listed both in a row and as beyond the seed: {mapped & beyond}"
    unplaced = _modules(RUNBOOK) - mapped - beyond
    assert not unplaced, f"documented but not in the runbook map: {sorted(unplaced)}"
    assert beyond <= _modules(RUNBOOK), f"listed as beyond but not documented: {beyond}"


def test_every_row_status_agrees_with_what_the_row_names() -> None:
    """full/partial rows name a test; a row that names a command, code or a test is not
    "missing"; every command and code path named exists; a stated gap in stack settings is
    still true of the committed stack files."""
    import yaml

    stack_config = [
        (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        for path in sorted(ROOT.glob("Pulumi.*.yaml"))
    ]
    assert stack_config
    for number, _line, command, _alert, tests, status in _map_rows():
        kind = status.split(":", 1)[0]
        names_something = command != "-" or tests != "-"
        assert (kind == "missing") != names_something, (
            f"row {number}: status {kind!r} but it names command {command!r} and tests {tests!r}"
        )
        if kind != "missing":
            assert "`tests/" in tests, f"row {number}: a {kind} row names its test"
        for module in _modules(command):
            assert importlib.util.find_spec(module) is not None, f"row {number}: no {module}"
        for path in re.findall(
            r"`((?:app|ops|stacks|platform_stack|policies)/[\w/]+\.py)`", command
        ):
            assert (ROOT / path).is_file(), f"row {number}: no {path}"
        for key in re.findall(r"no committed stack sets `([\w:]+)`", status):
            assert not any(key in config for config in stack_config), (
                f"row {number} says no stack sets {key}, but one does: update its status"
            )


def test_the_extensions_the_runbook_lists_are_the_loaders() -> None:
    from app.ingest import LOADERS

    text = " ".join(section("### Document ingestion fails").split())
    listed = ", ".join(f"`{e}`" for e in LOADERS)
    assert f"Only extensions with a loader are accepted ({listed})" in text
