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
from policies.runbook.thresholds import API_DEPLOYMENT
from policies.runbook.thresholds import API_KEYS_FILE_IN_POD as KEYS_FILE
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


def raw_rendered(stack: str, **overrides: str) -> list[RenderedResource]:
    """A deep copy of the rendered stack exactly as the program makes it (cached)."""
    return copy.deepcopy(list(_rendered(stack, tuple(sorted(overrides.items())))))


def rendered(stack: str, **overrides: str) -> list[RenderedResource]:
    """The rendered stack in the shape issue 9/10 gives it (see `with_target_shape`)."""
    return with_target_shape(raw_rendered(stack, **overrides))


def with_target_shape(resources: list[RenderedResource]) -> list[RenderedResource]:
    """What the stacks deliver once the i9s branch (issues 9 and 10) is merged, applied only where
    the program does not deliver it yet (a no-op on stacks that already do):

    - per-rule Grafana routing: each rule's `notificationSettings.contactPoint` is the stack's
      ContactPoint, and there is no org-wide NotificationPolicy;
    - the API's key source: env API_KEYS_FILE pointing into a mounted Secret volume.

    `test_real_stacks_...` in test_policy_rules.py checks the raw render: it fails with exactly
    these two policies until then, and with none after.
    """
    points = [r for r in resources if r.type.endswith(":ContactPoint")]
    groups = [r for r in resources if r.type.endswith(":RuleGroup")]
    routed = all(
        (rule.get("notificationSettings") or {}).get("contactPoint")
        for g in groups
        for rule in g.inputs.get("rules") or []
    )
    if not routed and len(points) == 1:
        resources = [r for r in resources if not r.type.endswith(":NotificationPolicy")]
        for group in groups:
            for rule in group.inputs.get("rules") or []:
                rule["notificationSettings"] = {"contactPoint": points[0].inputs["name"]}
    for r in resources:
        if r.type == "kubernetes:apps/v1:Deployment" and r.name == API_DEPLOYMENT:
            spec = r.inputs["spec"]["template"]["spec"]
            (api, *_) = spec["containers"]
            names = {e.get("name") for e in api.get("env") or []}
            if "API_KEYS_FILE" not in names and "API_KEYS" not in names:
                api.setdefault("env", []).append({"name": "API_KEYS_FILE", "value": KEYS_FILE})
                api.setdefault("volumeMounts", []).append(
                    {"name": "api-keys", "mountPath": KEYS_FILE.rsplit("/", 1)[0]}
                )
                spec.setdefault("volumes", []).append(
                    {"name": "api-keys", "secret": {"secretName": "flowchat-api-keys"}}
                )
    return resources


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
