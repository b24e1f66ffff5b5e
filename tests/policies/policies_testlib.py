"""Helpers of tests/policies: rendered stacks and the pack's analyzer, in process.

`analyze()` drives `pulumi_policy.policy._PolicyAnalyzerServicer` (the object `PolicyPack` serves)
with the same calls the engine makes: Configure, Analyze per resource, AnalyzeStack once.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies.runbook.rules import PACK_NAME, policies
from stacks.render import RenderedResource, render_stack

LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory"}


@dataclass(frozen=True)
class Found:
    policy: str
    level: str
    message: str
    urn: str


@functools.cache
def _rendered(stack: str, overrides: tuple[tuple[str, str], ...]) -> tuple[RenderedResource, ...]:
    return tuple(render_stack(stack, config_overrides=dict(overrides) or None))


def rendered(stack: str, **overrides: str) -> list[RenderedResource]:
    """A deep copy of the rendered stack (cached); overrides as in `render_stack`."""
    return copy.deepcopy(list(_rendered(stack, tuple(sorted(overrides.items())))))


def find(resources: list[RenderedResource], type_suffix: str, name: str) -> RenderedResource:
    matches = [r for r in resources if r.type.endswith(type_suffix) and r.name == name]
    assert len(matches) == 1, f"{type_suffix} {name}: {[r.name for r in resources]}"
    return matches[0]


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(dict(value), struct_pb2.Struct())


def analyze(
    resources: list[RenderedResource], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Found]:
    """Run every policy of the pack on `resources`; `config`: policy -> {enforcementLevel?, ...}."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", policies(), EnforcementLevel.MANDATORY)
    if config:
        levels = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY}
        request = analyzer_pb2.ConfigureAnalyzerRequest(
            policyConfig={
                name: analyzer_pb2.PolicyConfig(
                    enforcementLevel=levels[entry.get("enforcementLevel", "mandatory")],
                    properties=_struct({k: v for k, v in entry.items() if k != "enforcementLevel"}),
                )
                for name, entry in config.items()
            }
        )
        servicer.Configure(request, None)
    found: list[Found] = []
    stack = []
    for r in resources:
        props = _struct(r.inputs)
        options = analyzer_pb2.AnalyzerResourceOptions(parent=r.parent_urn or "")
        response = servicer.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=r.type, properties=props, urn=r.urn, name=r.name, options=options
            ),
            None,
        )
        found += [_found(d, r.urn) for d in response.diagnostics]
        stack.append(
            analyzer_pb2.AnalyzerResource(
                type=r.type, properties=props, urn=r.urn, name=r.name, parent=r.parent_urn or ""
            )
        )
    response = servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=stack), None)
    found += [_found(d, "") for d in response.diagnostics]
    return found


def _found(d: Any, urn: str) -> Found:
    message = d.message.removeprefix(d.description + "\n")
    return Found(d.policyName, LEVELS.get(d.enforcementLevel, "?"), message, d.urn or urn)


def mandatory(found: list[Found]) -> list[Found]:
    return [f for f in found if f.level == "mandatory"]
