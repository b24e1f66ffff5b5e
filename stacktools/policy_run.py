"""Run the policy pack over rendered resources exactly the way the Pulumi CLI does.

The CLI starts a Python pack as ``python -m pulumi.policy <engine-address> <pack-dir>`` (the pack
prints the port its analyzer gRPC server listens on), then calls `GetAnalyzerInfo`, `Configure`
(every policy's enforcement level and config, schema defaults filled in), `Analyze` once per
resource and `AnalyzeStack` once with all of them. `run_policy_pack` does the same over loopback
and returns the diagnostics as `Violation`s; the process is always stopped.

    python -m stacktools.policy_run --stack staging     # render offline, run the pack, print
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from stacktools.render import Violation

PACK_DIR = Path(__file__).resolve().parent.parent / "policies"
LEVELS = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
_LEVEL_VALUES = {name: value for value, name in LEVELS.items()}
STARTUP_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0


class Resource(Protocol):  # stacktools.render.RenderedResource
    type: str
    name: str
    inputs: dict[str, Any]
    urn: str
    parent_urn: str | None


class PolicyPackError(RuntimeError):
    """The pack did not start, or an analyzer call failed; the message carries its stderr."""


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(value, default=str)), struct_pb2.Struct())


def _start(pack_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pulumi.policy", "127.0.0.1:0", str(pack_dir)],
        cwd=pack_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            _stop(process)
            raise PolicyPackError(f"policy pack {pack_dir} printed no port in {STARTUP_TIMEOUT}s")
        chunk = os.read(process.stdout.fileno(), 1)
        if not chunk:
            stderr = _stop(process)
            raise PolicyPackError(f"policy pack {pack_dir} exited before serving:\n{stderr}")
        line += chunk
    selector.close()
    try:
        return process, int(line.strip())
    except ValueError:
        stderr = _stop(process)
        raise PolicyPackError(
            f"policy pack printed {line!r} instead of a port:\n{stderr}"
        ) from None


def _stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else b""
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    return stderr.decode(errors="replace")


def _policy_config(
    info: analyzer_pb2.AnalyzerInfo, config: Mapping[str, Any] | None
) -> dict[str, analyzer_pb2.PolicyConfig]:
    """What the engine sends to Configure: for every policy its level and schema defaults, then
    the user's config (`{"policy": "advisory"}` or `{"policy": {"enforcementLevel": ..., k: v}}`;
    `"all"` sets the level of every policy)."""
    config = dict(config or {})
    unknown = set(config) - {p.name for p in info.policies} - {"all"}
    if unknown:
        raise PolicyPackError(f"config for unknown policies: {', '.join(sorted(unknown))}")
    result = {}
    for policy in info.policies:
        level = policy.enforcementLevel
        schema = json_format.MessageToDict(policy.configSchema.properties)
        properties = {k: v["default"] for k, v in schema.items() if "default" in v}
        for key in ("all", policy.name):
            entry = config.get(key)
            if isinstance(entry, str):
                entry = {"enforcementLevel": entry}
            for name, value in (entry or {}).items():
                if name == "enforcementLevel":
                    if value not in _LEVEL_VALUES:
                        raise PolicyPackError(f"{key}: unknown enforcement level {value!r}")
                    level = _LEVEL_VALUES[value]
                elif key != "all":
                    properties[name] = value
        result[policy.name] = analyzer_pb2.PolicyConfig(
            enforcementLevel=level, properties=_struct(properties)
        )
    return result


def _violations(response: analyzer_pb2.AnalyzeResponse, resource: str | None) -> list[Violation]:
    found = []
    for d in response.diagnostics:
        message = d.message
        if d.description and message.startswith(d.description + "\n"):
            message = message[len(d.description) + 1 :]  # the engine prefixes the description
        found.append(
            Violation(
                policy=d.policyName,
                level=LEVELS.get(d.enforcementLevel, str(d.enforcementLevel)),
                message=message,
                resource=d.urn or resource,
            )
        )
    return found


def run_policy_pack(
    resources: Sequence[Resource],
    *,
    stack: str,
    project: str = "flowchat",
    pack_dir: Path = PACK_DIR,
    config: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Analyze `resources` with the pack in `pack_dir` as `pulumi preview --policy-pack` would."""
    pack_dir = Path(pack_dir).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update({"PULUMI_PROJECT": project, "PULUMI_STACK": stack, "PULUMI_DRY_RUN": "true"})
    process, port = _start(pack_dir, env)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT)
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
        stub.Configure(
            analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=_policy_config(info, config)),
            timeout=CALL_TIMEOUT,
        )
        violations: list[Violation] = []
        analyzed = []
        for r in resources:
            properties = _struct(r.inputs)
            options = analyzer_pb2.AnalyzerResourceOptions(parent=r.parent_urn or "")
            request = analyzer_pb2.AnalyzeRequest(
                type=r.type, properties=properties, urn=r.urn, name=r.name, options=options
            )
            violations += _violations(stub.Analyze(request, timeout=CALL_TIMEOUT), r.urn)
            analyzed.append(
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    properties=properties,
                    urn=r.urn,
                    name=r.name,
                    options=options,
                    parent=r.parent_urn or "",
                )
            )
        stack_request = analyzer_pb2.AnalyzeStackRequest(resources=analyzed)
        violations += _violations(stub.AnalyzeStack(stack_request, timeout=CALL_TIMEOUT), None)
        return violations
    except grpc.RpcError as exc:
        raise PolicyPackError(f"policy pack call failed: {exc}\n{_stop(process)}") from exc
    finally:
        channel.close()
        _stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacktools.policy_run",
        description="Render a stack offline and run the flowchat-runbook policy pack on it.",
    )
    parser.add_argument("--stack", required=True, help="staging or prod")
    parser.add_argument("--pack-dir", type=Path, default=PACK_DIR)
    parser.add_argument("--config", help="policy config as JSON (as --policy-pack-config)")
    args = parser.parse_args(argv)
    from stacktools.render import render_stack

    print(f"rendering stack {args.stack} ...", file=sys.stderr)
    resources = render_stack(args.stack)
    print(f"running {args.pack_dir} on {len(resources)} resources ...", file=sys.stderr)
    config = json.loads(args.config) if args.config else None
    violations = run_policy_pack(resources, stack=args.stack, pack_dir=args.pack_dir, config=config)
    for v in violations:
        print(f"[{v.level}] {v.policy}: {v.message}\n    {v.resource or '(stack)'}")
    mandatory = [v for v in violations if v.level == "mandatory"]
    print(
        f"{len(violations)} violations, {len(mandatory)} mandatory",
        file=sys.stderr,
    )
    return 1 if mandatory else 0


if __name__ == "__main__":
    sys.exit(main())
