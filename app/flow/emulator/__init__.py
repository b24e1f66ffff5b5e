"""A local stand-in for the CI&T Flow gateway, speaking the same HTTP contract.

Run it with ``python -m app.flow.emulator [--port 8010] ...`` (``--help`` lists the knobs), or in
process with :func:`run_emulator` (tests). It checks credentials, tenant, agent and tokens the way
Flow does, answers extractively from the numbered sources in the prompt (see
:func:`answer_prompt`), and can inject latency, 500s and 429s. Admin routes under ``/_emulator``
(``POST /_emulator/config``, ``GET /_emulator/stats``) belong to the emulator only.

One module per concern: :mod:`.config` (knobs and stats), :mod:`.state` (tokens, fault
injection, counters), :mod:`.answers` (the extractive answerer), :mod:`.routes` (the HTTP app)
and :mod:`.server` (in-process handle and command line); every public name is importable from
this package.
"""

from app.flow.emulator.answers import (
    MAX_ANSWER_SENTENCES,
    NOT_FOUND_ANSWER,
    Source,
    answer_messages,
    answer_prompt,
    parse_prompt,
)
from app.flow.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT,
    CallKind,
    ConfigUpdate,
    EmulatorConfig,
    EmulatorStats,
)
from app.flow.emulator.routes import create_app
from app.flow.emulator.server import (
    EmulatorHandle,
    build_parser,
    config_from_args,
    main,
    run_emulator,
)
from app.flow.emulator.state import EmulatorState

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_TENANT",
    "MAX_ANSWER_SENTENCES",
    "NOT_FOUND_ANSWER",
    "CallKind",
    "ConfigUpdate",
    "EmulatorConfig",
    "EmulatorHandle",
    "EmulatorState",
    "EmulatorStats",
    "Source",
    "answer_messages",
    "answer_prompt",
    "build_parser",
    "config_from_args",
    "create_app",
    "main",
    "parse_prompt",
    "run_emulator",
]
