"""The operations log as GitHub issues: ``python -m ops.incident open|update|close|list-overdue``.

- ``open``: one issue labelled ``incident``, ``severity:PN`` and ``stack:STACK`` from the incident
  template (severity P0-P3, stack, alert and its runbook section, timeline, customer impact);
- ``update``: a timestamped timeline comment, and optionally a new severity (relabelled) or
  customer impact;
- ``close``: the resolution in the timeline, the issue closed; for P0 and P1 (runbook
  "Escalation") a post-mortem issue from its template, labelled ``post-mortem``, due
  `POSTMORTEM_DUE_DAYS` after the close, and both issues linked to each other;
- ``list-overdue``: open incidents and post-mortems past their due date (the weekly workflow
  "incidents" runs it and writes the job summary).

GitHub's REST API over httpx: the token from ``GITHUB_TOKEN``, the repository from ``--repo`` or
``GITHUB_REPOSITORY``, the API from ``GITHUB_API_URL`` (set by Actions; default api.github.com).
Exit status 1 with one sentence on bad input or an API error; the token is never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args

import httpx

from ops.summary import OpsError, fail, md_table, say, write_summary
from policies.runbook.thresholds import RUNBOOK_ANCHORS

Priority = Literal["P0", "P1", "P2", "P3"]
PRIORITIES: Final = get_args(Priority)
POSTMORTEM_PRIORITIES: Final = ("P0", "P1")  # runbook "Escalation": post-mortem for P1 and P0
POSTMORTEM_DUE_DAYS: Final = 5  # working week after the close
INCIDENT_LABEL: Final = "incident"
POSTMORTEM_LABEL: Final = "post-mortem"
DEFAULT_API_URL: Final = "https://api.github.com"
RUNBOOK_URL: Final = "https://github.com/flowchat/flowchat/blob/main/docs/runbook.md"
_DUE = re.compile(r"^\*\*Due:\*\* (\d{4}-\d{2}-\d{2})$", re.MULTILINE)
MEANING: Final[dict[str, str]] = {
    "P0": "service down for every tenant",
    "P1": "major feature broken or badly degraded for many tenants",
    "P2": "partial degradation with a workaround",
    "P3": "minor issue, no customer impact",
}


def severity_label(priority: str) -> str:
    return f"severity:{priority}"


def stack_label(stack: str) -> str:
    return f"stack:{stack}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def incident_body(
    *, priority: str, stack: str, alert: str | None, impact: str, summary: str, at: dt.datetime
) -> str:
    runbook = f"[{alert}]({RUNBOOK_URL}#{RUNBOOK_ANCHORS[alert]})" if alert else "(none)"
    return (
        f"**Severity:** {priority} ({MEANING[priority]})\n"
        f"**Stack:** {stack}\n"
        f"**Alert:** {runbook}\n\n"
        f"## Customer impact\n\n{impact or 'unknown yet'}\n\n"
        f"## Timeline (UTC)\n\n- {at.isoformat()} opened: {summary}\n\n"
        "Updates: `python -m ops.incident update --issue N --note TEXT`; "
        "close: `python -m ops.incident close --issue N --resolution TEXT`.\n"
    )


def postmortem_body(incident: Mapping[str, Any], priority: str, due: dt.date) -> str:
    return (
        f"Post-mortem of #{incident['number']} ({priority}): {incident['title']}\n\n"
        f"**Due:** {due.isoformat()}\n\n"
        "## Summary\n\n## Timeline\n\nSee the incident's timeline comments.\n\n"
        "## Root cause\n\n## What went well / what went badly\n\n"
        "## Action items\n\n- [ ] \n"
    )


def due_date(body: str | None) -> dt.date | None:
    match = _DUE.search(body or "")
    return dt.date.fromisoformat(match.group(1)) if match else None


class GitHub:
    """The few issue calls the operations log makes (REST API v3)."""

    def __init__(self, repo: str, token: str, api_url: str = DEFAULT_API_URL) -> None:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise OpsError(f"repository {repo!r} is not OWNER/NAME")
        self.repo = repo
        self.client = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=30,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, f"/repos/{self.repo}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise OpsError(f"cannot reach the GitHub API ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                reason = response.json().get("message", "")
            except ValueError:
                reason = ""
            raise OpsError(
                f"GitHub answered {response.status_code} to {method} {path}"
                + (f": {reason}" if reason else "")
            )
        return response.json()

    def create(self, title: str, body: str, labels: Sequence[str]) -> dict[str, Any]:
        return self._call("POST", "/issues", json={"title": title, "body": body, "labels": labels})

    def get(self, number: int) -> dict[str, Any]:
        return self._call("GET", f"/issues/{number}")

    def patch(self, number: int, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/issues/{number}", json=fields)

    def comment(self, number: int, body: str) -> dict[str, Any]:
        return self._call("POST", f"/issues/{number}/comments", json={"body": body})

    def list(self, labels: Sequence[str], state: str = "open") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call(
                "GET",
                "/issues",
                params={"labels": ",".join(labels), "state": state, "per_page": 100, "page": page},
            )
            found += [i for i in batch if "pull_request" not in i]
            if len(batch) < 100:
                return found
            page += 1


def _labels(issue: Mapping[str, Any]) -> list[str]:
    return [str(label["name"] if isinstance(label, dict) else label) for label in issue["labels"]]


def _priority(issue: Mapping[str, Any]) -> str:
    for label in _labels(issue):
        if label.startswith("severity:") and label.split(":", 1)[1] in PRIORITIES:
            return label.split(":", 1)[1]
    raise OpsError(f"issue #{issue['number']} has no severity:P0-P3 label")


def _incident(gh: GitHub, number: int) -> dict[str, Any]:
    issue = gh.get(number)
    if INCIDENT_LABEL not in _labels(issue):
        raise OpsError(f"issue #{number} is not labelled {INCIDENT_LABEL}")
    return issue


def open_incident(
    gh: GitHub, *, title: str, priority: str, stack: str, alert: str | None, impact: str
) -> dict[str, Any]:
    if alert is not None and alert not in RUNBOOK_ANCHORS:
        raise OpsError(f"unknown alert {alert!r}: expected one of {', '.join(RUNBOOK_ANCHORS)}")
    body = incident_body(
        priority=priority, stack=stack, alert=alert, impact=impact, summary=title, at=now()
    )
    labels = [INCIDENT_LABEL, severity_label(priority), stack_label(stack)]
    issue = gh.create(f"[{priority}] {title}", body, labels)
    say(f"opened incident #{issue['number']} ({priority}, {stack}): {issue.get('html_url', '')}")
    return issue


def update_incident(
    gh: GitHub, number: int, *, note: str, priority: str | None, impact: str | None
) -> dict[str, Any]:
    issue = _incident(gh, number)
    lines = [f"- {now().isoformat()} {note}"]
    if priority is not None:
        old = _priority(issue)
        labels = [
            severity_label(priority) if lb == severity_label(old) else lb for lb in _labels(issue)
        ]
        title = re.sub(r"^\[P[0-3]\] ", f"[{priority}] ", issue["title"])
        issue = gh.patch(number, labels=labels, title=title)
        lines.append(f"- severity {old} -> {priority}")
        say(f"incident #{number}: severity {old} -> {priority}")
    if impact:
        lines.append(f"- customer impact: {impact}")
    gh.comment(number, "\n".join(lines))
    say(f"incident #{number}: timeline updated")
    return issue


def close_incident(
    gh: GitHub, number: int, *, resolution: str, today: dt.date | None = None
) -> dict[str, Any] | None:
    """Close the incident; for P0/P1 open its post-mortem and link both. Returns the post-mortem."""
    issue = _incident(gh, number)
    if issue.get("state") == "closed":
        raise OpsError(f"incident #{number} is already closed")
    priority = _priority(issue)
    gh.comment(number, f"- {now().isoformat()} resolved: {resolution}")
    postmortem = None
    if priority in POSTMORTEM_PRIORITIES:
        due = (today or now().date()) + dt.timedelta(days=POSTMORTEM_DUE_DAYS)
        stacks = [lb for lb in _labels(issue) if lb.startswith("stack:")]
        postmortem = gh.create(
            f"Post-mortem: {issue['title']}",
            postmortem_body(issue, priority, due),
            [POSTMORTEM_LABEL, severity_label(priority), *stacks],
        )
        gh.comment(number, f"Post-mortem: #{postmortem['number']} (due {due.isoformat()})")
        say(f"opened post-mortem #{postmortem['number']} due {due.isoformat()}")
    gh.patch(number, state="closed", state_reason="completed")
    say(f"closed incident #{number} ({priority})")
    return postmortem


def overdue(gh: GitHub, today: dt.date | None = None) -> tuple[list[dict], list[dict]]:
    """(open incidents, open post-mortems past their due date)."""
    day = today or now().date()
    incidents = gh.list([INCIDENT_LABEL])
    late = [p for p in gh.list([POSTMORTEM_LABEL]) if (due_date(p.get("body")) or day) < day]
    return incidents, late


def list_overdue(
    gh: GitHub, today: dt.date | None = None, env: Mapping[str, str] | None = None
) -> int:
    incidents, late = overdue(gh, today)
    say(f"{len(incidents)} open incident(s), {len(late)} overdue post-mortem(s)")
    for issue in incidents:
        say(f"  incident #{issue['number']} {issue['title']}")
    for issue in late:
        due = due_date(issue["body"])
        say(f"  overdue post-mortem #{issue['number']} (due {due}) {issue['title']}")
    rows = [("incident", f"#{i['number']}", i["title"], "") for i in incidents]
    rows += [("post-mortem", f"#{p['number']}", p["title"], str(due_date(p["body"]))) for p in late]
    write_summary(
        "## Operations log\n\n" + md_table(("kind", "issue", "title", "due"), rows)
        if rows
        else "## Operations log\n\nNo open incident, no overdue post-mortem.\n",
        dict(env) if env is not None else None,
    )
    return len(incidents) + len(late)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.incident",
        description="Record incidents and post-mortems as GitHub issues (the operations log).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    sub = parser.add_subparsers(dest="command", required=True)
    opened = sub.add_parser("open", help="open an incident", parents=[common])
    opened.add_argument("--title", required=True)
    opened.add_argument("--severity", required=True, choices=PRIORITIES)
    opened.add_argument("--stack", required=True)
    opened.add_argument("--alert", help="the alert that fired (e.g. FlowchatHealthCheckFailing)")
    opened.add_argument("--impact", default="", help="customer impact, as known now")
    updated = sub.add_parser(
        "update", help="add a timeline entry (and re-rate the severity)", parents=[common]
    )
    updated.add_argument("--issue", type=int, required=True)
    updated.add_argument("--note", required=True)
    updated.add_argument("--severity", choices=PRIORITIES)
    updated.add_argument("--impact")
    closed = sub.add_parser("close", help="resolve; P0/P1 open their post-mortem", parents=[common])
    closed.add_argument("--issue", type=int, required=True)
    closed.add_argument("--resolution", required=True)
    listed = sub.add_parser(
        "list-overdue", help="open incidents and overdue post-mortems", parents=[common]
    )
    listed.add_argument("--fail-if-any", action="store_true", help="exit 2 when anything is listed")
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        repo = args.repo or env.get("GITHUB_REPOSITORY")
        if not repo:
            raise OpsError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
        token = env.get("GITHUB_TOKEN")
        if not token:
            raise OpsError("GITHUB_TOKEN is not set (a token that can write issues)")
        gh = GitHub(repo, token, env.get("GITHUB_API_URL") or DEFAULT_API_URL)
        if args.command == "open":
            open_incident(
                gh,
                title=args.title,
                priority=args.severity,
                stack=args.stack,
                alert=args.alert,
                impact=args.impact,
            )
        elif args.command == "update":
            update_incident(
                gh, args.issue, note=args.note, priority=args.severity, impact=args.impact
            )
        elif args.command == "close":
            close_incident(gh, args.issue, resolution=args.resolution)
        else:
            found = list_overdue(gh, env=env)
            return 2 if found and args.fail_if_any else 0
    except OpsError as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
