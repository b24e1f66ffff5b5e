"""Rotate the Flow credentials and admin token of a stack, validate them, roll back on failure.

The runbook's "Rotate Flow Credentials" as one command:

1. take the new values from the environment (``FLOW_AGENT_SECRET`` required, ``FLOW_AGENT``,
   ``FLOW_TENANT`` and ``ADMIN_TOKEN`` optional) - never from arguments;
2. remember the current version of each entry in the stack's secret store (AWS Secrets Manager
   or Azure Key Vault, entry names from ``app.contracts.secret_entry_name``);
3. write a new version of each entry;
4. force the ExternalSecret to sync, restart the API and worker deployments, wait for rollout;
5. run the smoke test (``ops.smoke``) against ``--smoke-url``;
6. on any failure in 3-5 (a failed check, a lost connection to Kubernetes, an unexpected error,
   Ctrl-C): restore the previous versions, sync and restart again, exit 1 saying so.

After a fresh ``pulumi up`` every entry holds ``app.contracts.SECRET_PLACEHOLDER``; the service
treats that admin token as unset, so the first rotation must set ``ADMIN_TOKEN`` or the admin
(document) routes stay disabled.

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
    ADMIN_TOKEN_SECRET,
    API_DEPLOYMENT,
    CHAT_LATENCY_P95_SECONDS,
    EXTERNAL_SECRET,
    SECRET_KEYS,
    SECRET_PLACEHOLDER,
    WORKER_DEPLOYMENT,
    namespace_for,
    secret_entry_name,
)
from app.observability.logs import configure_logging
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
DEFAULT_TIMEOUT = 300.0  # seconds for the secret sync and for each rollout (see the workflow)
ADMIN_TOKEN_NOTE = (
    f"the first rotation after a fresh `pulumi up` must set {ADMIN_TOKEN_SECRET}: until then the "
    f"entry holds the placeholder and the admin (document) routes stay disabled"
)


class RotationTimeouts(BaseModel):
    sync: float = 120.0
    rollout: float = 300.0
    interval: float = 2.0


def new_values_from_env(env: Mapping[str, str]) -> dict[str, SecretStr]:
    """The new values: keys of SECRET_KEYS (Flow credentials, ADMIN_TOKEN) set and non-empty."""
    if not env.get(REQUIRED_ENV):
        raise OpsError(
            f"refusing to rotate: the environment variable {REQUIRED_ENV} is not set "
            f"(new values come from {', '.join(SECRET_KEYS)})"
        )
    values = {key: SecretStr(env[key]) for key in SECRET_KEYS if env.get(key)}
    for key, value in values.items():
        if value.get_secret_value() == SECRET_PLACEHOLDER:
            raise OpsError(f"refusing to rotate: {key} is the stack's placeholder value")
    return values


def admin_token_is_placeholder(store: SecretStore, cloud: str, stack: str) -> bool:
    """Does the stack's ADMIN_TOKEN entry still hold the placeholder? (False when unreadable.)"""
    try:
        current = store.read(secret_entry_name(cloud, stack, ADMIN_TOKEN_SECRET))
    except Exception:  # only a hint: the rotation itself reports real errors
        return False
    return current.value.get_secret_value() == SECRET_PLACEHOLDER


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


def refuse_unchanged(values: Mapping[str, SecretStr], current: Mapping[str, SecretVersion]) -> None:
    """Refuse a "rotation" whose FLOW_AGENT_SECRET is the current one (nothing would change)."""
    new, now = values.get(REQUIRED_ENV), current.get(REQUIRED_ENV)
    if (
        new is not None
        and now is not None
        and new.get_secret_value() == now.value.get_secret_value()
    ):
        raise OpsError(
            f"refusing to rotate: the new {REQUIRED_ENV} equals the current version of "
            f"{now.name}; put the new value from the Flow portal into the secret first"
        )


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
    refuse_unchanged(values, previous)

    if ADMIN_TOKEN_SECRET not in values and admin_token_is_placeholder(store, cloud, stack):
        progress(f"warning: {ADMIN_TOKEN_NOTE}")
        steps.append(("warning", f"{ADMIN_TOKEN_SECRET} still holds the placeholder"))

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
    except BaseException as exc:  # anything after a write must leave the old credentials
        reason = _reason(exc)
        steps.append(("FAILED", reason))
        if not written:
            if not isinstance(exc, Exception):
                raise
            return RotationResult(
                ok=False, message=f"rotation of {stack} failed: {reason}", steps=steps
            )
        progress(f"rolling back: {reason}")
        try:
            roll_back(store, previous, written, progress)
            sync_and_restart(apps, custom, namespace, timeouts, progress)
        except Exception as again:
            steps.append(("ROLLBACK FAILED", _reason(again)))
            result = RotationResult(
                ok=False,
                message=f"rotation of {stack} failed ({reason}) and the rollback failed too "
                f"({_reason(again)}); restore the previous versions by hand (see docs/runbook.md)",
                steps=steps,
            )
        else:
            steps.append(("rolled back", ", ".join(v.name for v in written.values())))
            result = RotationResult(
                ok=False,
                rolled_back=True,
                message=f"rotation of {stack} failed ({reason}); rolled back to the previous "
                "credentials and restarted the pods",
                steps=steps,
            )
        if not isinstance(exc, Exception):  # Ctrl-C / SystemExit: report, then stop as asked
            progress(result.message)
            raise
        return result
    return RotationResult(
        ok=True,
        message=f"rotated {', '.join(entries)} for {stack} and the smoke test passed",
        steps=steps,
    )


def _reason(exc: BaseException) -> str:
    """An OpsError's sentence; anything else as its type and text (never a secret value)."""
    if isinstance(exc, OpsError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc)
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


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
        "variables FLOW_AGENT, FLOW_TENANT, FLOW_AGENT_SECRET; FLOW_AGENT_SECRET is required) "
        f"and, when {ADMIN_TOKEN_SECRET} is set, the admin token; validate with the smoke test, "
        "roll back on any failure.",
        epilog=f"Note: {ADMIN_TOKEN_NOTE}.",
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
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the secret sync and each rollout (default: %(default)g; "
        "a failed rotation waits for them twice: forward and rollback)",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--pulumi-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.rotate_credentials", stream=sys.stderr)  # library warnings, off stdout
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
