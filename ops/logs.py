"""Every log line of one chat across the API and the workers, in time order.

    python -m ops.logs --job ID [FILE ...]        (no FILE, or -, reads standard input)
    python -m ops.logs --request ID | --trace ID  [FILE ...]

The lines that carry the job id (``job_id`` field, or the id inside the message, as in RQ's
own lines) give the chat's request ids and trace ids; every line with one of those ids is
shown as well (the API request that enqueued it, the requests that read the answer).
Reads the JSON lines every process writes (``LOG_FORMAT=json``, the default off a terminal),
the console lines of ``make run`` on a terminal (``key=value`` pairs), and the ``[pod/...]``
prefixes of ``kubectl logs --prefix``; other lines are skipped. ``--format pretty`` prints one
readable line per record. Exits 1 with one sentence when no line matches.

In a cluster::

    kubectl logs -n flowchat-prod -l app.kubernetes.io/name=flowchat --all-containers \\
        --prefix --since=2h --max-log-requests=20 | python -m ops.logs --job ID
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from app.observability.logs import LOG_FIELDS, configure_logging
from ops.summary import fail

_KUBECTL_PREFIX = re.compile(r"^\[[^\]\s]+\]\s")
_CONSOLE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\S+)\s+\[\s*(\w+)\s*\]\s+(.*)$")
_CONSOLE_FIELD = re.compile(r"(?:^|\s)(\w+)=(\S+)")
_CONSOLE_LOGGER = re.compile(r"\s\[([\w.]+)\]\s")


@dataclass
class Record:
    line: str  # as read (without a kubectl prefix and the newline)
    source: str  # file name, or "stdin"
    number: int  # order of reading, for a stable sort
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def timestamp(self) -> str:
        return str(self.fields.get("timestamp", ""))

    def get(self, name: str) -> str | None:
        value = self.fields.get(name)
        return str(value) if value not in (None, "") else None

    def pretty(self) -> str:
        f = self.fields
        ids = " ".join(f"{k}={f[k]}" for k in LOG_FIELDS if f.get(k))
        extra = " ".join(
            f"{k}={v}"
            for k, v in f.items()
            if k not in {*LOG_FIELDS, "timestamp", "level", "logger", "process", "message"}
            and k not in ("span_id", "exception")
        )
        head = (
            f"{f.get('timestamp', '?')} {f.get('process', '?')!s:<13} "
            f"{f.get('level', '?')!s:<7} {f.get('logger', '?')}: {f.get('message', '')}"
        )
        text = " ".join(part for part in (head, extra, ids) if part)
        if f.get("exception"):
            text += "\n" + str(f["exception"])
        return text


def parse(line: str) -> dict[str, object] | None:
    """The fields of one log line (JSON or console format), or None for anything else."""
    text = line.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    match = _CONSOLE_TIME.match(text)
    if match is None:
        return None
    timestamp, level, rest = match.groups()
    fields: dict[str, object] = {"timestamp": timestamp, "level": level}
    logger = _CONSOLE_LOGGER.search(f" {rest} ")
    if logger:
        fields["logger"] = logger.group(1)
        fields["message"] = rest[: rest.find(f"[{logger.group(1)}]")].strip()
    else:
        fields["message"] = rest
    for key, value in _CONSOLE_FIELD.findall(rest):
        fields.setdefault(key, value)
    return fields


def read_records(sources: Iterable[tuple[str, TextIO]]) -> Iterator[Record]:
    number = 0
    for name, stream in sources:
        for raw in stream:
            number += 1
            line = _KUBECTL_PREFIX.sub("", raw.rstrip("\n"), count=1)
            fields = parse(line)
            if fields is not None:
                yield Record(line=line, source=name, number=number, fields=fields)


def select(records: list[Record], *, job: str | None, request: str | None, trace: str | None):
    """The records of one chat: those naming the id, then those sharing their request or
    trace ids."""
    requests: set[str] = {request} if request else set()
    traces: set[str] = {trace} if trace else set()
    if job:
        for record in records:
            if record.get("job_id") == job or job in str(record.fields.get("message", "")):
                requests.update(filter(None, [record.get("request_id")]))
                traces.update(filter(None, [record.get("trace_id")]))

    def wanted(record: Record) -> bool:
        if job and (record.get("job_id") == job or job in str(record.fields.get("message", ""))):
            return True
        return record.get("request_id") in requests or record.get("trace_id") in traces

    chosen = [r for r in records if wanted(r)]
    chosen.sort(key=lambda r: (r.timestamp, r.number))
    return chosen


def _open_sources(paths: list[str]) -> Iterator[tuple[str, TextIO]]:
    if not paths or paths == ["-"]:
        yield "stdin", sys.stdin
        return
    for name in paths:
        if name == "-":
            yield "stdin", sys.stdin
            continue
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{name} is not a readable file")
        with path.open(encoding="utf-8", errors="replace") as stream:
            yield str(path), stream


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.logs",
        description="Show every log line of one chat across the API and the workers.",
        epilog="Example: python -m ops.logs --job 3f2a... var/logs/api.log var/logs/worker.log",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--job", help="the chat's job id (the id POST /api/chat returned)")
    which.add_argument("--request", help="a request id (the X-Request-ID response header)")
    which.add_argument("--trace", help="a trace id (32 hex digits)")
    parser.add_argument("files", nargs="*", help="log files (default: standard input)")
    parser.add_argument(
        "--format", choices=("json", "pretty"), default="json", help="output (default json)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.logs", stream=sys.stderr)
    what = (
        f"job {args.job}"
        if args.job
        else f"request {args.request}"
        if args.request
        else f"trace {args.trace}"
    )
    try:
        records = list(read_records(_open_sources(args.files)))
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    chosen = select(records, job=args.job, request=args.request, trace=args.trace)
    if not chosen:
        where = ", ".join(args.files) if args.files else "standard input"
        return fail(
            f"no log line mentions {what} among {len(records)} structured lines read from "
            f"{where}; check the id and the time range of the logs"
        )
    for record in chosen:
        print(record.pretty() if args.format == "pretty" else record.line)
    processes: dict[str, int] = {}
    for record in chosen:
        name = str(record.fields.get("process", "?"))
        processes[name] = processes.get(name, 0) + 1
    counts = ", ".join(f"{name}: {n}" for name, n in sorted(processes.items()))
    print(f"{len(chosen)} line(s) of {what} ({counts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
