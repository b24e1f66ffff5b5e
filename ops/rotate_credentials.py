"""Rotate the Flow credentials of a stack, validate them, and roll back when they fail.

The runbook's "Rotate Flow Credentials" as one command:

1. take the new values from the environment (``FLOW_AGENT_SECRET`` required, ``FLOW_AGENT`` and
   ``FLOW_TENANT`` optional) - never from arguments;
2. remember the current version of each entry in the stack's secret store (AWS Secrets Manager
   or Azure Key Vault, entry names from ``app.contracts.secret_entry_name``);
3. write a new version of each entry;
4. force the ExternalSecret to sync, restart the API and worker deployments, wait for rollout;
5. run the smoke test (``ops.smoke``) against ``--smoke-url``;
6. on any failure in 3-5: restore the previous versions, sync and restart again, exit 1.

Usage: ``python -m ops.rotate_credentials --stack staging [--cloud aws|azure] [--smoke-url URL]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from kubernetes import client
from pydantic import BaseModel, SecretStr

from app.contracts import (
    API_DEPLOYMENT,
    CHAT_LATENCY_P95_SECONDS,
    EXTERNAL_SECRET,
    FLOW_SECRET_NAMES,
    WORKER_DEPLOYMENT,
    namespace_for,
    secret_entry_name,
)
from ops import kube
from ops.secret_store import SecretStore, SecretVersion, open_store
from ops.smoke import (
    API_KEY_ENV,
    DEFAULT_PROMPTS,
    RegressionPrompt,
    SmokeReport,
    load_prompts,
    run_smoke,
)
from ops.summary import OpsError, fail, md_table, say, write_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRED_ENV = "FLOW_AGENT_SECRET"
SMOKE_URL_ENV = "FLOWCHAT_SMOKE_URL"
DEPLOYMENTS = (API_DEPLOYMENT, WORKER_DEPLOYMENT)


class RotationTimeouts(BaseModel):
    sync: float = 120.0
    rollout: float = 300.0
    interval: float = 2.0


def new_values_from_env(env: Mapping[str, str]) -> dict[str, SecretStr]:
    """The new credential values (keys of FLOW_SECRET_NAMES present and non-empty)."""
    if not env.get(REQUIRED_ENV):
        raise OpsError(
            f"refusing to rotate: the environment variable {REQUIRED_ENV} is not set "
            "(new values come from FLOW_AGENT, FLOW_TENANT and FLOW_AGENT_SECRET)"
        )
    return {key: SecretStr(env[key]) for key in FLOW_SECRET_NAMES if env.get(key)}


def cloud_of_stack(stack: str, pulumi_dir: Path = REPO_ROOT) -> str:
    """``flowchat:cloud`` from ``Pulumi.<stack>.yaml``."""
    path = pulumi_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise OpsError(f"{path} does not exist; pass --cloud aws|azure")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cloud = (data.get("config") or {}).get("flowchat:cloud")
    if isinstance(cloud, dict):  # a value written as {value: ...}
        cloud = cloud.get("value")
    if cloud not in ("aws", "azure"):
        raise OpsError(f"{path} sets no flowchat:cloud of aws or azure; pass --cloud aws|azure")
    return str(cloud)


def read_current(
    store: SecretStore, entries: Mapping[str, str], progress: Callable[[str], None] = say
) -> dict[str, SecretVersion]:
    """The current version of each entry (key -> version), read before anything changes."""
    current = {}
    for key, name in entries.items():
        current[key] = store.read(name)
        progress(f"  {name}: current version {current[key].version}")
    return current


def write_new(
    store: SecretStore,
    entries: Mapping[str, str],
    values: Mapping[str, SecretStr],
    written: dict[str, SecretVersion],
    progress: Callable[[str], None] = say,
) -> dict[str, SecretVersion]:
    """Write a new version of each entry; ``written`` fills as it goes (for a partial rollback)."""
    for key, name in entries.items():
        written[key] = store.write(name, values[key].get_secret_value())
        progress(f"  {name}: wrote version {written[key].version}")
    return written


def sync_and_restart(
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    timeouts: RotationTimeouts,
    progress: Callable[[str], None] = say,
) -> None:
    """Force the ExternalSecret to sync, then restart the API and workers and wait for both."""
    before = kube.force_sync_external_secret(custom, EXTERNAL_SECRET, namespace)
    kube.wait_for_external_secret(
        custom,
        EXTERNAL_SECRET,
        namespace,
        before,
        timeout=timeouts.sync,
        interval=timeouts.interval,
        progress=progress,
    )
    for name in DEPLOYMENTS:
        kube.restart_deployment(apps, name, namespace)
        progress(f"  restarted deployment {namespace}/{name}")
    for name in DEPLOYMENTS:
        kube.wait_for_rollout(
            apps,
            name,
            namespace,
            timeout=timeouts.rollout,
            interval=timeouts.interval,
            progress=progress,
        )


def roll_back(
    store: SecretStore,
    previous: Mapping[str, SecretVersion],
    written: Mapping[str, SecretVersion],
    progress: Callable[[str], None] = say,
) -> None:
    """Make each previously current version current again (only for entries written)."""
    for key, rejected in written.items():
        store.restore(previous[key], rejected)
        progress(f"  {rejected.name}: restored version {previous[key].version}")


class RotationResult(BaseModel):
    ok: bool
    rolled_back: bool = False
    message: str
    steps: list[tuple[str, str]] = []


def rotate(
    *,
    stack: str,
    cloud: str,
    namespace: str,
    values: Mapping[str, SecretStr],
    store: SecretStore,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    smoke: Callable[[], SmokeReport] | None,
    timeouts: RotationTimeouts | None = None,
    progress: Callable[[str], None] = say,
) -> RotationResult:
    """The whole rotation with rollback; every client is a parameter."""
    timeouts = timeouts or RotationTimeouts()
    entries = {key: secret_entry_name(cloud, stack, key) for key in values}
    steps: list[tuple[str, str]] = []

    progress(f"1/4 reading the current versions from {store.description}")
    previous = read_current(store, entries, progress)
    steps.append(("read current versions", ", ".join(entries.values())))

    written: dict[str, SecretVersion] = {}
    try:
        progress("2/4 writing the new versions")
        write_new(store, entries, values, written, progress)
        steps.append(("write new versions", f"{len(written)} entries"))
        progress(f"3/4 syncing {EXTERNAL_SECRET} and restarting {', '.join(DEPLOYMENTS)}")
        sync_and_restart(apps, custom, namespace, timeouts, progress)
        steps.append(("sync and restart", namespace))
        if smoke is None:
            progress("4/4 smoke test skipped (--skip-smoke)")
            steps.append(("smoke test", "skipped"))
        else:
            progress("4/4 smoke test")
            report = smoke()
            if not report.ok:
                raise OpsError(f"the smoke test failed: {report.failure}")
            steps.append(("smoke test", "passed"))
    except OpsError as exc:
        reason = str(exc)
        steps.append(("FAILED", reason))
        if not written:
            return RotationResult(
                ok=False, message=f"rotation of {stack} failed: {reason}", steps=steps
            )
        progress(f"rolling back: {reason}")
        try:
            roll_back(store, previous, written, progress)
            sync_and_restart(apps, custom, namespace, timeouts, progress)
        except OpsError as again:
            steps.append(("ROLLBACK FAILED", str(again)))
            return RotationResult(
                ok=False,
                message=f"rotation of {stack} failed ({reason}) and the rollback failed too "
                f"({again}); restore the previous versions by hand (see docs/runbook.md)",
                steps=steps,
            )
        steps.append(("rolled back", ", ".join(v.name for v in written.values())))
        return RotationResult(
            ok=False,
            rolled_back=True,
            message=f"rotation of {stack} failed ({reason}); rolled back to the previous "
            "credentials and restarted the pods",
            steps=steps,
        )
    return RotationResult(
        ok=True,
        message=f"rotated {', '.join(entries)} for {stack} and the smoke test passed",
        steps=steps,
    )


def smoke_runner(
    url: str, api_key: str | None, prompts: list[RegressionPrompt], budget: float
) -> Callable[[], SmokeReport]:
    """The smoke step of a rotation: ``ops.smoke.run_smoke`` with fixed arguments."""

    def smoke() -> SmokeReport:
        return run_smoke(url, api_key=api_key, prompts=prompts, budget=budget)

    return smoke


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.rotate_credentials",
        description="Rotate the Flow credentials of a stack (new values from the environment "
        "variables FLOW_AGENT, FLOW_TENANT, FLOW_AGENT_SECRET), validate with the smoke test, "
        "roll back on failure.",
    )
    parser.add_argument("--stack", required=True, choices=("staging", "prod"))
    parser.add_argument(
        "--cloud", choices=("aws", "azure"), help="default: flowchat:cloud of Pulumi.<stack>.yaml"
    )
    parser.add_argument("--namespace", help="Kubernetes namespace (default: flowchat-<stack>)")
    parser.add_argument("--context", help="kubeconfig context (default: in-cluster or current)")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--vault-url", help="Azure Key Vault URL (default: the stack's vault)")
    parser.add_argument(
        "--smoke-url", help=f"service URL for the smoke test (default: ${SMOKE_URL_ENV})"
    )
    parser.add_argument(
        "--skip-smoke", action="store_true", help="do not validate (not recommended)"
    )
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS, help="smoke prompts")
    parser.add_argument(
        "--budget", type=float, default=CHAT_LATENCY_P95_SECONDS, help="smoke latency budget"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the secret sync and each rollout",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--pulumi-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        values = new_values_from_env(env)
        cloud = args.cloud or cloud_of_stack(args.stack, args.pulumi_dir)
        namespace = args.namespace or namespace_for(args.stack)
        smoke_url = args.smoke_url or env.get(SMOKE_URL_ENV)
        smoke: Callable[[], SmokeReport] | None = None
        if not args.skip_smoke:
            if not smoke_url:
                raise OpsError(
                    f"no smoke test URL: pass --smoke-url or set {SMOKE_URL_ENV} "
                    "(or --skip-smoke to rotate without validating)"
                )
            smoke = smoke_runner(
                smoke_url, env.get(API_KEY_ENV) or None, load_prompts(args.prompts), args.budget
            )
        store = open_store(cloud, args.stack, vault_url=args.vault_url)
        api = kube.load_api_client(args.context, args.kubeconfig)
        say(f"Rotating {', '.join(values)} for {args.stack} ({cloud}, namespace {namespace})")
        result = rotate(
            stack=args.stack,
            cloud=cloud,
            namespace=namespace,
            values=values,
            store=store,
            apps=client.AppsV1Api(api),
            custom=client.CustomObjectsApi(api),
            smoke=smoke,
            timeouts=RotationTimeouts(
                sync=args.timeout, rollout=args.timeout, interval=args.interval
            ),
        )
    except OpsError as exc:
        return fail(str(exc))
    verdict = "succeeded" if result.ok else ("rolled back" if result.rolled_back else "FAILED")
    write_summary(
        f"### Flow credential rotation for {args.stack}: {verdict}\n\n"
        + md_table(("Step", "Detail"), result.steps)
        + f"\n{result.message}\n"
    )
    if not result.ok:
        return fail(result.message)
    say(result.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
