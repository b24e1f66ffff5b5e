"""The LLM judge: the rubric of ``app.rag.judge`` sent to Flow with the service's own client
(``app.flow.client.FlowClient`` configured from the same FLOW_* settings as the service).

Without Flow credentials (``make run``, the pull-request check) the judge is a Flow emulator
started in this process: the same HTTP contract, and its deterministic judge implements the
same rubric file. Either way the verdict is parsed against the same schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from app.core.settings import load_settings
from app.flow.client import FlowClient
from app.flow.emulator import EmulatorConfig, run_emulator
from app.flow.errors import FlowError
from app.rag.judge import Verdict, judge_messages, parse_verdict


@dataclass
class Judge:
    flow: FlowClient
    description: str

    def grade(
        self, question: str, answer: str, sources: dict[int, str], history: list[str]
    ) -> tuple[Verdict | None, str | None]:
        """The verdict, or None and one sentence saying why there is none."""
        try:
            reply = self.flow.chat(
                judge_messages(question, answer, sources, history), temperature=0
            )
        except FlowError as exc:
            return None, f"the judge did not answer: {exc.reason}"
        try:
            return parse_verdict(reply.content), None
        except ValueError as exc:
            return None, str(exc)


@contextlib.contextmanager
def open_judge() -> Iterator[Judge]:
    """The real gateway when FLOW_TENANT, FLOW_AGENT and FLOW_AGENT_SECRET are set, else an
    in-process emulator with its development credentials."""
    settings = load_settings()
    if settings.flow_configured:
        flow = FlowClient.from_settings(settings)
        try:
            yield Judge(flow, f"Flow at {settings.FLOW_BASE_URL} ({settings.FLOW_MODEL})")
        finally:
            flow.close()
        return
    config = EmulatorConfig()
    with run_emulator(config) as emulator:
        flow = FlowClient(
            base_url=emulator.url,
            tenant=config.tenant,
            agent=config.client_id,
            agent_secret=config.client_secret,
            app_to_access=config.app_to_access,
        )
        try:
            yield Judge(flow, "the Flow emulator's deterministic judge (no FLOW_* credentials)")
        finally:
            flow.close()
