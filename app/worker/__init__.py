"""The chat workers: the RQ job that answers a chat and the processes that run it.

Owns the job function and its allowlist (:mod:`app.worker.runner`), the resources a process
shares (:mod:`.resources`), the threaded work loops (:mod:`.threads`), the liveness probe
(:mod:`.probe`) and the pool's command line (:mod:`.cli`, ``python -m app.worker``). May import
core, observability, access, contracts and the service packages (chat, rag, flow, ingest);
never the API or local running. Importing this package loads nothing: ``answer_chat`` is
resolved on first use, because RQ jobs name it by the stored job name
``app.worker.answer_chat`` (:data:`app.contracts.CHAT_JOB`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # RQ imports "app.worker" and reads "answer_chat" (jobs queued under that name, before and
    # after the move to app.worker.runner, keep running); the heavy import waits until then
    if name == "answer_chat":
        from app.worker.runner import answer_chat

        return answer_chat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
