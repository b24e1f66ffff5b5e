"""First deployment of a stack: the one-time commands, and the first write of its secrets.

    python -m ops.bootstrap plan --stack staging --org ORG --repo OWNER/REPO
    python -m ops.bootstrap secrets --stack staging

`plan` prints, in order, every command a platform engineer runs once per stack before the first
deploy (docs/first-deployment.md): the platform program (cluster and add-ons), the bootstrap
program (GitHub OIDC trust, deploy identities, ESC environments, Pulumi Cloud's issuer and
policy, GitHub environments and variables), a targeted `pulumi up` that creates only the secret
store and its grants (with their parent component), `secrets` to fill it, and the preflight.
It prints commands, it runs none: they need an admin of the Pulumi org and of the cloud account.

`secrets` writes the first value of every entry the stack delivers through External Secrets
(app.contracts.STACK_SECRET_KEYS) that has no value yet, after the targeted `pulumi up` created
the vault (Azure) or the entries (AWS). Values come from the environment, never from arguments:
FLOW_AGENT, FLOW_TENANT, FLOW_AGENT_SECRET, ADMIN_TOKEN and API_KEYS (one key per line) are
required; REDIS_PASSWORD and CHROMA_TOKEN are generated when unset. An entry that already has a
value is left alone (change it with ops.rotate_credentials). Every value is checked before
anything is written.
"""

from __future__ import annotations

import argparse
import os
import secrets as token
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from app.contracts import (
    APP_NAME,
    CHROMA_TOKEN_SECRET,
    KEY_ID_SECRET_KEY,
    REDIS_PASSWORD_SECRET,
    SECRET_PLACEHOLDER,
    STACK_SECRET_KEYS,
    secret_entry_name,
)
from ops.secret_store import SecretStore, open_store
from ops.summary import OpsError, say

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED = (REDIS_PASSWORD_SECRET, KEY_ID_SECRET_KEY, CHROMA_TOKEN_SECRET)  # generated when unset


def _stack_file(stack: str) -> dict:
    import yaml

    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise OpsError(f"no stack file {path.name}: create it first (copy Pulumi.staging.yaml)")
    return yaml.safe_load(path.read_text()) or {}


def plan(stack: str, org: str, repo: str) -> list[str]:
    """The one-time commands for `stack`, in order (shell lines, comments start with #).

    The trust, identities, ESC environments and GitHub settings are the bootstrap program's
    (bootstrap_stack/), the cluster and its add-ons the platform program's (platform_stack/);
    what is left by hand is the first value of each secret-manager entry.
    """
    _stack_file(stack)
    targets = " ".join(f"--target '{urn}'" for urn in secret_store_urns(stack))
    return [
        "# 1. cluster, add-ons, DNS, ClusterIssuer (skip it with flowchat:platform.external)",
        f"(cd platform_stack && pulumi up --stack {org}/flowchat-platform/{stack})",
        f"# 2. trust and identities for {repo}: GitHub OIDC deploy roles, ESC environments, the",
        "#    Pulumi Cloud issuer and its policy, GitHub environments, variables and secrets",
        f"(cd bootstrap_stack && pulumi up --stack {org}/flowchat-bootstrap/main)",
        "# 3. the service stack, then only the secret store and its grants (with their parent",
        "#    component: the engine refuses a target whose parent is not targeted)",
        f"pulumi stack init {org}/{APP_NAME}/{stack}",
        f"pulumi up --stack {org}/{APP_NAME}/{stack} --yes {targets}",
        "# 4. the first value of every entry (values from the environment, see --help)",
        f"python -m ops.bootstrap secrets --stack {stack}",
        "# 5. every prerequisite of the deploy, named one per line",
        f"python -m ops.preflight --stack {stack}",
        "# 6. merge to main: the deploy workflow runs the full `pulumi up` and the smoke test",
    ]


def secret_store_urns(stack: str) -> list[str]:
    """URNs of the Secrets component's cloud resources (rendered offline under mocks)."""
    from stacktools.render import render_stack

    resources = render_stack(stack)
    cloud = [
        r
        for r in resources
        if r.custom
        and "flowchat:stacks:Secrets$" in r.urn
        and r.type.startswith(("azure-native:", "aws:"))
    ]
    parents = {r.parent_urn for r in cloud if r.parent_urn}
    return sorted({*(r.urn for r in cloud), *parents})


def first_values(env: Mapping[str, str]) -> dict[str, SecretStr]:
    """Every STACK_SECRET_KEYS value from `env` (REDIS_PASSWORD, CHROMA_TOKEN generated when
    unset)."""
    missing = [k for k in STACK_SECRET_KEYS if not env.get(k) and k not in GENERATED]
    if missing:
        raise OpsError(f"set {', '.join(missing)} in the environment; nothing was written")
    placeholder = [k for k in STACK_SECRET_KEYS if env.get(k) == SECRET_PLACEHOLDER]
    if placeholder:
        raise OpsError(f"{', '.join(placeholder)} holds the placeholder; nothing was written")
    return {key: SecretStr(env.get(key) or token.token_urlsafe(32)) for key in STACK_SECRET_KEYS}


def write_first(
    store: SecretStore,
    cloud: str,
    stack: str,
    values: Mapping[str, SecretStr],
    progress: Callable[[str], None] = say,
) -> list[str]:
    """Write each entry that has no value yet; return the keys written."""
    written = []
    for key, value in values.items():
        name = secret_entry_name(cloud, stack, key)
        try:
            store.read(name)
        except OpsError as exc:
            if "does not exist" not in str(exc):
                raise
        else:
            progress(f"  {name}: already set, left alone (change it with ops.rotate_credentials)")
            continue
        store.write(name, value.get_secret_value())
        written.append(key)
        progress(f"  {name}: first value written")
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bootstrap",
        description="First deployment of a stack: print the one-time commands (plan), or "
        "write the first value of each secret-manager entry (secrets).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="print the one-time commands for a stack, in order")
    p.add_argument("--stack", required=True)
    p.add_argument("--org", required=True, help="Pulumi Cloud organization")
    p.add_argument("--repo", required=True, help="GitHub repository, OWNER/NAME")
    s = sub.add_parser("secrets", help="first values of the stack's entries (from the env)")
    s.add_argument("--stack", required=True)
    s.add_argument("--vault-url", help="Azure Key Vault URL (default: the stack's vault)")
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            print("\n".join(plan(args.stack, args.org, args.repo)))
            return 0
        cloud = str((_stack_file(args.stack).get("config") or {}).get("flowchat:cloud", "azure"))
        values = first_values(os.environ if env is None else env)
        store = open_store(cloud, args.stack, vault_url=args.vault_url)
        say(f"first values for {args.stack} in {store.description}:")
        written = write_first(store, cloud, args.stack, values)
        say(f"done: {len(written)} written, {len(values) - len(written)} already set")
        return 0
    except OpsError as exc:
        print(f"bootstrap failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["first_values", "main", "plan", "write_first"]
