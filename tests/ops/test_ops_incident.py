"""ops.incident against a local fake of GitHub's issues REST API (real HTTP on loopback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fake_github import FakeGitHub, serve

from ops import incident
from ops.incident import GitHub, main
from policies.runbook.thresholds import RUNBOOK_ANCHORS


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve() as fake:
        yield fake


def env(fake: FakeGitHub, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": fake.token,
        "GITHUB_REPOSITORY": fake.repo,
        "GITHUB_API_URL": fake.url,
        **extra,
    }


def _open(fake: FakeGitHub, severity: str, capsys: pytest.CaptureFixture[str]) -> int:
    argv = ["open", "--title", "chat down", "--severity", severity, "--stack", "prod"]
    argv += ["--alert", "FlowchatHealthCheckFailing", "--impact", "no tenant can chat"]
    assert main(argv, env(fake)) == 0
    out = capsys.readouterr().out
    assert out.startswith("opened incident #")
    return int(out.split("#", 1)[1].split(" ", 1)[0])


def test_open_update_close_p1_opens_a_linked_post_mortem(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    number = _open(github, "P2", capsys)
    issue = github.issue(number)
    assert github.labels(number) == {"incident", "severity:P2", "stack:prod"}
    assert issue["title"] == "[P2] chat down"
    anchor = RUNBOOK_ANCHORS["FlowchatHealthCheckFailing"]
    for part in (
        "**Severity:** P2",
        "**Stack:** prod",
        f"runbook.md#{anchor}",
        "no tenant can chat",
    ):
        assert part in issue["body"]
    assert "## Timeline (UTC)" in issue["body"]

    argv = ["update", "--issue", str(number), "--note", "rollback started", "--severity", "P1"]
    assert main(argv, env(github)) == 0
    assert github.labels(number) == {"incident", "severity:P1", "stack:prod"}
    assert github.issue(number)["title"] == "[P1] chat down"
    assert "rollback started" in github.comments[number][-1]
    assert "severity P2 -> P1" in github.comments[number][-1]

    assert main(["close", "--issue", str(number), "--resolution", "rolled back"], env(github)) == 0
    assert github.issue(number)["state"] == "closed"
    (postmortem,) = [n for n in github.issues if "post-mortem" in github.labels(n)]
    assert github.labels(postmortem) == {"post-mortem", "severity:P1", "stack:prod"}
    body = github.issue(postmortem)["body"]
    assert f"#{number}" in body
    due = incident.due_date(body)
    assert due == dt.datetime.now(dt.UTC).date() + dt.timedelta(days=incident.POSTMORTEM_DUE_DAYS)
    assert any(f"Post-mortem: #{postmortem}" in c for c in github.comments[number])
    assert any("rolled back" in c for c in github.comments[number])
    out = capsys.readouterr().out
    assert f"opened post-mortem #{postmortem}" in out and f"closed incident #{number}" in out


def test_closing_a_p3_opens_no_post_mortem(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    number = _open(github, "P3", capsys)
    assert main(["close", "--issue", str(number), "--resolution", "noise"], env(github)) == 0
    assert github.issue(number)["state"] == "closed"
    assert not [n for n in github.issues if "post-mortem" in github.labels(n)]
    # closing it twice is refused with one sentence
    assert main(["close", "--issue", str(number), "--resolution", "x"], env(github)) == 1
    assert "already closed" in capsys.readouterr().err


def test_list_overdue_lists_open_incidents_and_late_post_mortems(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    gh = GitHub(github.repo, github.token, github.url)
    late = incident.open_incident(
        gh, title="p0 outage", priority="P0", stack="prod", alert=None, impact=""
    )
    ten_days_ago = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)
    late_pm = incident.close_incident(gh, late["number"], resolution="fixed", today=ten_days_ago)
    fresh = incident.open_incident(
        gh, title="p1 slow", priority="P1", stack="staging", alert=None, impact=""
    )
    fresh_pm = incident.close_incident(gh, fresh["number"], resolution="fixed")
    still_open = incident.open_incident(
        gh, title="p2 ongoing", priority="P2", stack="prod", alert=None, impact=""
    )
    assert late_pm and fresh_pm
    capsys.readouterr()
    summary = tmp_path / "summary.md"
    code = main(["list-overdue"], env(github, GITHUB_STEP_SUMMARY=str(summary)))
    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "1 open incident(s), 1 overdue post-mortem(s)"
    assert f"incident #{still_open['number']} [P2] p2 ongoing" in out
    assert f"overdue post-mortem #{late_pm['number']}" in out
    assert f"#{fresh_pm['number']}" not in out
    assert f"#{late_pm['number']}" in summary.read_text()
    assert main(["list-overdue", "--fail-if-any"], env(github)) == 2


@pytest.mark.parametrize(
    ("argv", "environ", "sentence"),
    [
        (["open", "--title", "t", "--severity", "P1", "--stack", "prod"], {}, "GITHUB_TOKEN"),
        (
            ["open", "--title", "t", "--severity", "P1", "--stack", "prod", "--alert", "Nope"],
            None,
            "unknown alert 'Nope'",
        ),
        (["update", "--issue", "99", "--note", "n"], None, "404"),
    ],
)
def test_bad_input_exits_1_with_one_sentence(
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environ: dict | None,
    sentence: str,
) -> None:
    given = env(github) if environ is None else {"GITHUB_REPOSITORY": github.repo}
    assert main(argv, given) == 1
    err = capsys.readouterr().err
    assert sentence in err and len(err.strip().splitlines()) == 1
    assert github.token not in err


def test_repo_flag_overrides_the_environment(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    given = {**env(github), "GITHUB_REPOSITORY": "someone/else"}
    assert main(["list-overdue", "--repo", github.repo], given) == 0
    assert main(["list-overdue"], given) == 1  # the fake knows only its own repository
    assert "404" in capsys.readouterr().err


def test_wrong_token_is_refused(github: FakeGitHub, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-overdue"], {**env(github), "GITHUB_TOKEN": "wrong"}) == 1
    assert "401" in capsys.readouterr().err


def test_an_issue_that_is_no_incident_is_refused(
    github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    GitHub(github.repo, github.token, github.url).create("a bug", "", ["bug"])
    assert main(["close", "--issue", "1", "--resolution", "x"], env(github)) == 1
    assert "not labelled incident" in capsys.readouterr().err


def test_help_runs() -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"], {})
    assert done.value.code == 0


def test_every_alert_links_an_existing_runbook_section_and_a_runnable_open_line() -> None:
    import re
    from pathlib import Path

    from ops.incident import build_parser
    from stacks.alerts import Thresholds, alert_rules

    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#{1,6} (.+)$", runbook, flags=re.M)
    }
    rules = alert_rules(Thresholds(), namespace="flowchat-prod", chroma_pvc="data-chroma-0")
    assert rules
    for rule in rules:
        url = rule.annotations["runbook_url"]
        assert url.split("#", 1)[1] in anchors, url
        argv = rule.annotations["incident"].split()[3:]  # after "python -m ops.incident"
        parsed = build_parser().parse_args(argv)
        assert (parsed.command, parsed.alert) == ("open", rule.name)
        expected = "P1" if rule.severity == "critical" else "P3"
        assert parsed.severity == expected
