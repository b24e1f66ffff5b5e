"""The runbook is a test: every command in docs/runbook.md (and docs/first-deployment.md) parses
with its own command's parser, and every command that targets the local stack runs, exactly as
written, against a production-shaped stack (Redis password, API keys, nothing seeded).

Commands are taken from fenced code blocks and from inline code spans that start with
``python -m`` or ``make`` (or pipe into ``python -m``). Placeholders the runbook defines in its
conventions (``STACK``, ``URL``, ...) are given a value only where a parser restricts it.
A failure names the runbook section the command is in.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: ROOT / "docs" / f"{name}.md" for name in ("runbook", "first-deployment")}
# values for the placeholders of the runbook's conventions, where a parser restricts the value
# (N: the incident's issue number of `ops.incident update|close --issue N`, an int)
PLACEHOLDERS = {"STACK": "staging", "N": "1"}
LOCAL_TIMEOUT = 900  # seconds; a command that hangs fails the test instead of the suite


@dataclass(frozen=True)
class Command:
    doc: str
    section: str
    text: str  # as written (whitespace of line breaks folded)

    @property
    def local(self) -> bool:
        return "--stack local" in self.text

    def __str__(self) -> str:
        return f"{self.doc}.md, section {self.section!r}: {self.text}"


# a fence may be indented (a code block inside a numbered list item): its body is dedented
_FENCE = re.compile(r"^[ \t]*```[\w-]*\n(.*?)^[ \t]*```", re.M | re.S)
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def _commands_in(text: str) -> list[str]:
    """``python -m ...`` / ``make ...`` commands in a shell text (pipes split, env prefixes
    and comments dropped)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" # ", 1)[0].strip()
        for part in line.split("|"):
            words = part.strip().split()
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
                words.pop(0)
            part = " ".join(words)
            if part.startswith(("python -m ", ".venv/bin/python -m ", "make ")):
                found.append(part)
    return found


def extract(doc: str, path: Path) -> list[Command]:
    text = path.read_text(encoding="utf-8")
    headings = [(m.start(), m.group(1).strip()) for m in _HEADING.finditer(text)]

    def section_at(pos: int) -> str:
        title = "(top)"
        for start, heading in headings:
            if start > pos:
                break
            title = heading
        return title

    commands: list[tuple[int, Command]] = []
    fenced = []
    for match in _FENCE.finditer(text):
        fenced.append(match.span())
        for cmd in _commands_in(textwrap.dedent(match.group(1))):
            commands.append((match.start(), Command(doc, section_at(match.start()), cmd)))
    for match in _SPAN.finditer(text):
        if any(a <= match.start() < b for a, b in fenced):
            continue
        span = " ".join(match.group(1).split())
        if not (span.startswith(("python -m ", "make ")) or "| python -m " in span):
            continue
        for cmd in _commands_in(span):
            commands.append((match.start(), Command(doc, section_at(match.start()), cmd)))
    return [c for _, c in sorted(commands, key=lambda item: item[0])]


ALL = [c for doc, path in DOCS.items() for c in extract(doc, path)]
LOCAL = [c for c in ALL if c.local]


def _argv(command: Command) -> tuple[str, list[str]]:
    words = shlex.split(command.text)
    if words[0] == "make":
        return "make", words[1:]
    module, args = words[2], words[3:]
    args = [PLACEHOLDERS.get(a, a) for a in args]
    # `[--flag VALUE]` marks an optional part: parse what is inside as given
    args = [a.strip("[]") for a in args if a.strip("[]")]
    return module, args


def test_the_runbook_has_commands_to_check() -> None:
    modules = {_argv(c)[0] for c in ALL}
    assert {"ops.smoke", "ops.queue", "ops.worker", "ops.documents", "make"} <= modules
    assert len(LOCAL) >= 5, [str(c) for c in LOCAL]


def test_code_blocks_inside_list_items_are_read(tmp_path: Path) -> None:
    """The steps of first-deployment.md are numbered: their code blocks are indented."""
    path = tmp_path / "steps.md"
    path.write_text("1. Look:\n\n   ```sh\n   python -m ops.queue status --stack local\n   ```\n")
    assert [c.text for c in extract("x", path)] == ["python -m ops.queue status --stack local"]
    local = {c.text for c in LOCAL if c.doc == "first-deployment"}
    assert "python -m ops.smoke --stack local --allow-open" in local


@pytest.mark.parametrize("command", ALL, ids=str)
def test_every_command_parses_with_its_own_parser(command: Command) -> None:
    module, args = _argv(command)
    if module == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in args:
            if "=" in target:  # `make lock UPGRADE=1`: a variable the Makefile reads
                variable = target.split("=", 1)[0]
                assert re.search(rf"\$\({re.escape(variable)}\)", makefile), (
                    f"{command}: the Makefile never reads {variable}"
                )
                continue
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (
                f"{command}: no make target {target!r}"
            )
        return
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{command}: module {module} does not exist ({exc})")
    if not args:  # a module named in prose (`python -m app.ingest.worker`): it must exist
        return
    assert hasattr(mod, "build_parser"), f"{command}: {module} has no build_parser()"
    try:
        mod.build_parser().parse_args(args)
    except SystemExit as exc:
        if exc.code != 0:  # --help exits 0
            pytest.fail(f"{command}: does not parse (exit {exc.code})")


@pytest.fixture(scope="module")
def local_results(ops_stack: object) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every local command of the runbooks, in document order, run once as written."""
    results = {}
    for command in LOCAL:
        words = shlex.split(command.text)
        argv = [sys.executable, *words[1:]] if words[0] == "python" else words
        results[str(command)] = subprocess.run(
            argv,
            cwd=ROOT,
            env=ops_stack.env,  # type: ignore[attr-defined]
            capture_output=True,
            text=True,
            timeout=LOCAL_TIMEOUT,
            check=False,
        )
    return results


@pytest.mark.parametrize("command", LOCAL, ids=str)
def test_every_local_command_runs_as_written(
    command: Command, local_results: dict, ops_stack: object
) -> None:
    done = local_results[str(command)]
    tail = (done.stdout[-1500:] + "\n" + done.stderr[-1500:]).strip()
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{tail}"
    stack = ops_stack.stack  # type: ignore[attr-defined]
    for secret in (stack.redis_password, stack.admin_token, ops_stack.api_key):  # type: ignore[attr-defined]
        assert secret not in done.stdout + done.stderr, f"{command} printed a secret"
