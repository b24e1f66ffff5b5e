"""One logging configuration for every process: the API, the workers, the Flow emulator that
``make run`` starts, and the operator commands.

structlog renders, the standard library's ``logging`` carries: every record of every logger
(ours, RQ's, uvicorn's, httpx's) goes through one root handler on stdout, so nothing prints in
another shape. Why structlog: it has the context-variable binding (``bind_contextvars``) that
lets the ids of a request or a job ride along every line without passing them around, a JSON
renderer and a human console renderer behind one switch, and a ``ProcessorFormatter`` that puts
records of foreign stdlib loggers through the same chain.

Every line carries ``timestamp``, ``level``, ``logger``, ``message``, ``process`` and, where
known, the ids in :data:`LOG_FIELDS` (``trace_id`` comes from the current OpenTelemetry span).
Known secret values (Flow agent secret, admin token, API keys, the Redis password) are blanked
from the rendered line as a last line of defence; the user's text is never logged at INFO.

Settings (environment): ``LOG_FORMAT`` = ``auto`` (console on a terminal, JSON otherwise),
``json`` or ``console``; ``LOG_LEVEL`` (default ``INFO``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, Literal, TextIO

import structlog
from opentelemetry import trace

# LoggingSettings lives with the settings (core never imports observability); re-exported here
from app.core.settings import LoggingSettings, Settings, SettingsError, get_settings

# the ids that join the lines of one chat across processes (ops.logs and the runbook use them)
LOG_FIELDS = ("request_id", "job_id", "conversation_id", "trace_id", "api_key_id")
# other structured fields our own code may pass with ``extra=``; anything else is dropped
EXTRA_FIELDS = (
    "outcome",
    "status",
    "method",
    "path",
    "duration_ms",
    "queue",
    "prompt_tokens",
    "completion_tokens",
)
REDACTED = "***"
MIN_SECRET_CHARS = 6  # shorter values would blank ordinary words
ANONYMOUS_KEY = "anonymous"
# third-party loggers too chatty at INFO (one line per HTTP call to Chroma or Flow)
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "chromadb", "urllib3")


_secrets: set[str] = set()


def api_key_id(key: str | None, secret: str = "") -> str:
    """The id of an API key in logs, metrics, jobs and quotas: 12 hex digits of an HMAC-SHA256
    of the key under the server's ``KEY_ID_SECRET``, never the key itself; without the secret
    nobody can test a guessed key against an id seen in a metric or a log.

    ``app.access.keys.key_id`` is this function, so a log line, a token metric and a quota counter
    name one key the same way."""
    if not key:
        return ANONYMOUS_KEY
    return hmac_id(key, secret)


def hmac_id(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()[:12]


def add_secrets(values: Iterable[str | None]) -> None:
    """Values that must never appear in a log line (blanked after rendering)."""
    _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)


def _settings_secrets(settings: Settings | None = None) -> list[str]:
    """Every secret value the settings hold, found by type rather than by name (so a secret
    setting added later is blanked too): each ``SecretStr`` field and each item of a list of
    them (``API_KEYS``), the password in ``REDIS_URL``, and the keys of ``API_KEYS_FILE``."""
    from urllib.parse import urlsplit

    from pydantic import SecretStr

    try:
        settings = settings or get_settings()
    except SettingsError:  # the caller reports bad settings itself
        return []
    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        items = value if isinstance(value, list | tuple) else [value]
        values.extend(v.get_secret_value() for v in items if isinstance(v, SecretStr))
    password = urlsplit(settings.REDIS_URL).password
    if password:
        values.append(password)
    path = getattr(settings, "API_KEYS_FILE", None)
    if path is not None:
        from app.access.keys import parse_key_file  # the keys module imports this one

        with suppress(OSError):
            values.extend(parse_key_file(path.read_text(encoding="utf-8")))
    return values


def _scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# --- processors ---------------------------------------------------------------------------------


def _add_trace(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.trace_id:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def _process_name(name: str) -> structlog.typing.Processor:
    def add(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("process", name)
        return event

    return add


def _drop_empty_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for field in LOG_FIELDS:
        if event.get(field) in (None, ""):
            event.pop(field, None)
    return event


# ids that name one user's chat: never on an access line (its path is templated instead)
PRIVATE_IDS = ("job_id", "conversation_id")
ACCESS_LOGGERS = ("flowchat.access", "uvicorn.access")
_CHAT_ID_IN_PATH = re.compile(r"(/api/chat/)(?!\{)[^/?\s\"]+")


def template_path(path: str) -> str:
    """A request path with any chat job id replaced by ``{job_id}``."""
    return _CHAT_ID_IN_PATH.sub(r"\1{job_id}", path)


def _access_lines(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """An access line (ours or uvicorn's) carries no job or conversation id, in its fields or
    in its path."""
    if event.get("logger") in ACCESS_LOGGERS:
        for name in PRIVATE_IDS:
            event.pop(name, None)
        for name in ("path", "event"):
            if isinstance(event.get(name), str):
                event[name] = template_path(event[name])
    return event


_FIRST = ("timestamp", "level", "logger", "process", "message", *LOG_FIELDS)


def _order(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Fixed keys first, so a line reads the same way in every process."""
    ordered = {k: event[k] for k in _FIRST if k in event}
    ordered.update((k, v) for k, v in event.items() if k not in ordered)
    return ordered


class _ScrubbingRenderer:
    """The final renderer, with known secret values blanked from its output."""

    def __init__(self, renderer: structlog.typing.Processor) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        return _scrub(str(self.renderer(logger, method, event)))


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty and isatty())
    return fmt == "json"


def configure_logging(
    process: str,
    *,
    fmt: Literal["auto", "json", "console"] | None = None,
    level: str | None = None,
    stream: TextIO | None = None,
    settings: Settings | None = None,
) -> None:
    """Route every logger of this process through one handler on ``stream`` (stdout).

    The secret values of ``settings`` (default: the environment's) are blanked from every line.

    Idempotent: calling it again (a test, a second app factory) replaces the handler.
    """
    chosen = LoggingSettings()
    fmt = fmt or chosen.LOG_FORMAT
    level = (level or chosen.LOG_LEVEL).upper()
    stream = stream or sys.stdout
    add_secrets(_settings_secrets(settings))

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(allow=(*LOG_FIELDS, *EXTRA_FIELDS)),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_trace,
        _process_name(process),
        _drop_empty_ids,
        _access_lines,
    ]
    if _use_json(fmt, stream):
        final: list[structlog.typing.Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _order,
            _ScrubbingRenderer(structlog.processors.JSONRenderer(sort_keys=False)),
        ]
    else:
        colors = bool(getattr(stream, "isatty", lambda: False)())
        final = [_ScrubbingRenderer(structlog.dev.ConsoleRenderer(colors=colors))]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("flowchat")
    handler.setLevel(level)  # the floor for every logger, also those RQ and uvicorn set to INFO
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call, or a basicConfig's
        if old.get_name() == "flowchat" or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn and RQ attach their own handlers and stop propagation: bring them back to root
    # (a logger switched off on purpose, like uvicorn's access log with --no-access-log, has
    # no handler and does not propagate: it stays off)
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if name.split(".")[0] in ("uvicorn", "rq") and logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# --- context ------------------------------------------------------------------------------------


def bind(**ids: str | None) -> None:
    """Attach ids to every later line of this context (task, thread or job)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v})


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Attach ids to the lines logged inside the block, then restore the previous ones."""
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in ids.items() if v}):
        yield


def clear_ids() -> None:
    """Start from nothing (a new request: no id of an earlier one may leak into it)."""
    structlog.contextvars.clear_contextvars()


def current_ids() -> dict[str, str]:
    """The ids bound in this context that a job it enqueues carries along (not the job id,
    which is the new job's own, nor the trace id, which travels as trace context)."""
    bound_now = structlog.contextvars.get_contextvars()
    return {
        k: str(v)
        for k, v in bound_now.items()
        if k in LOG_FIELDS and k not in ("job_id", "trace_id") and v
    }


def ids_from(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the known id fields of a mapping (what a job's meta carried)."""
    return {k: str(v) for k, v in (meta or {}).items() if k in LOG_FIELDS and v}
