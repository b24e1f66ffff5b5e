"""Compare two offline previews (``python -m stacks.preview --json``) as Markdown.

``python -m ops.preview_diff BASE.json HEAD.json [--output FILE] [--fail-on-mandatory]``

Prints, for the pull-request comment and the job summary: resources added, removed and changed
(by type and name, with the input keys that changed; values are never shown, since inputs may
hold secret placeholders) and the policy violations of HEAD, marking those that are new. A missing
BASE file (the base branch has no preview yet) counts as an empty preview.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from app.observability.logs import configure_logging
from ops.summary import OpsError, fail, md_escape, md_table

MAX_KEYS = 8  # changed keys listed per resource


class Resource(BaseModel):
    type: str
    name: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class Violation(BaseModel):
    policy: str
    level: str
    message: str
    resource: str | None = None

    def key(self) -> tuple[str, str, str]:
        return (self.policy, self.resource or "", self.message)


class Preview(BaseModel):
    stack: str = ""
    resources: list[Resource] = Field(default_factory=list)
    violations: list[Violation] = Field(default_factory=list)


class PreviewDiff(BaseModel):
    stack: str
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    changed: list[tuple[str, str, list[str]]]
    violations: list[tuple[Violation, bool]]  # (violation, new in head)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v, _ in self.violations if v.level == "mandatory"]


def load_preview(path: Path, *, missing_ok: bool = False) -> Preview:
    if not path.is_file():
        if missing_ok:
            return Preview()
        raise OpsError(f"the preview file {path} does not exist")
    try:
        return Preview.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise OpsError(f"the preview file {path} is not a stacks.preview JSON: {exc}") from None


def changed_keys(old: Any, new: Any, prefix: str = "", depth: int = 3) -> list[str]:
    """Dotted paths (to ``depth`` levels) where two input trees differ."""
    if old == new:
        return []
    if depth == 0 or not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix or "(value)"]
    keys: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        keys += changed_keys(old.get(key), new.get(key), path, depth - 1)
    return keys


def diff(base: Preview, head: Preview) -> PreviewDiff:
    old = {(r.type, r.name): r for r in base.resources}
    new = {(r.type, r.name): r for r in head.resources}
    changed = [
        (t, n, changed_keys(old[(t, n)].inputs, new[(t, n)].inputs))
        for t, n in sorted(set(old) & set(new))
        if old[(t, n)].inputs != new[(t, n)].inputs
    ]
    base_violations = {v.key() for v in base.violations}
    return PreviewDiff(
        stack=head.stack or base.stack,
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=changed,
        violations=[(v, v.key() not in base_violations) for v in head.violations],
    )


def render(d: PreviewDiff) -> str:
    title = f"### Preview of stack `{d.stack or '?'}`"
    counts = f"{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to remove"
    text = f"{title}: {counts}\n\n"
    if not (d.added or d.removed or d.changed):
        text += "No resource changes.\n\n"
    else:
        rows: list[tuple[str, str, str, str]] = []
        rows += [("+ add", t, n, "") for t, n in d.added]
        rows += [("- remove", t, n, "") for t, n in d.removed]
        for t, n, keys in d.changed:
            shown = ", ".join(f"`{k}`" for k in keys[:MAX_KEYS])
            more = f" (+{len(keys) - MAX_KEYS} more)" if len(keys) > MAX_KEYS else ""
            rows.append(("~ change", t, n, shown + more))
        text += md_table(("Change", "Type", "Name", "Changed inputs"), rows) + "\n"
    if d.violations:
        rows2 = [
            (
                ("new " if is_new else "") + v.level,
                v.policy,
                v.resource or "",
                md_escape(v.message),
            )
            for v, is_new in d.violations
        ]
        text += "**Policy violations:**\n\n"
        text += md_table(("Level", "Policy", "Resource", "Message"), rows2) + "\n"
    else:
        text += "No policy violations.\n\n"
    if d.mandatory:
        text += f"**{len(d.mandatory)} mandatory violation(s): this change cannot be deployed.**\n"
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.preview_diff",
        description="Markdown diff of two `python -m stacks.preview --json` files.",
    )
    parser.add_argument("base", type=Path, help="preview JSON of the base branch")
    parser.add_argument("head", type=Path, help="preview JSON of the pull request")
    parser.add_argument("--output", type=Path, help="also append the Markdown to this file")
    parser.add_argument(
        "--fail-on-mandatory",
        action="store_true",
        help="exit 1 when HEAD has a mandatory policy violation",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.preview_diff", stream=sys.stderr)  # library warnings, off stdout
    try:
        base = load_preview(args.base, missing_ok=True)
        head = load_preview(args.head)
    except OpsError as exc:
        return fail(str(exc))
    d = diff(base, head)
    markdown = render(d)
    print(markdown)
    if args.output:
        with args.output.open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    if args.fail_on_mandatory and d.mandatory:
        names = ", ".join(sorted({v.policy for v in d.mandatory}))
        return fail(f"stack {d.stack} has mandatory policy violations: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
