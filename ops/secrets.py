"""Check a stack's credentials in the secret manager without ever showing a value.

    python -m ops.secrets age --stack prod
        exit 1 when the current version of the Flow credentials is older than the rotation
        period (ROTATION_PERIOD_DAYS); the scheduled rotate-flow-credentials workflow runs it and
        opens or updates one issue. Reads only: nothing is written.

    python -m ops.secrets check --stack staging --env-file .env
        the runbook's "`.env` mirrors the secret manager": compares each entry of the secret
        manager with the same key in the env file by fingerprint (SHA-256 of a random per-run
        salt and the value, first 12 hex digits), says which entries differ or are missing, and
        exits 1 with one sentence when any does. Values and fingerprints of values never leave
        the process (the salt is never printed, so a printed fingerprint reveals nothing).

The cloud comes from `flowchat:cloud` in Pulumi.<stack>.yaml (`--cloud` overrides); credentials
from the environment (OIDC in workflows, your cloud login in a shell).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.contracts import FLOW_SECRET_NAMES, SECRET_KEYS, secret_entry_name
from ops.rotate_credentials import REPO_ROOT, cloud_of_stack
from ops.secret_store import SecretStore, open_store
from ops.summary import OpsError, fail, md_table, say, write_summary

ROTATION_PERIOD_DAYS = 30  # the runbook's "rotate monthly": the one place this period is set
FINGERPRINT_HEX = 12


def age_report(
    store: SecretStore,
    cloud: str,
    stack: str,
    *,
    now: datetime | None = None,
    period_days: int = ROTATION_PERIOD_DAYS,
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(rows of entry, written, age) for the Flow credentials; sentences for the overdue ones."""
    now = now or datetime.now(UTC)
    rows, overdue = [], []
    for key in FLOW_SECRET_NAMES:
        version = store.read(secret_entry_name(cloud, stack, key))
        if version.created is None:
            raise OpsError(f"{store.description} reports no creation date for {version.name}")
        created = version.created if version.created.tzinfo else version.created.replace(tzinfo=UTC)
        days = (now - created) / timedelta(days=1)
        rows.append((version.name, created.strftime("%Y-%m-%d"), f"{days:.0f} days"))
        if days > period_days:
            overdue.append(f"{version.name} ({days:.0f} days)")
    return rows, overdue


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``export``, quotes and ``#`` comment lines allowed), as docker compose
    and python-dotenv read them for the keys the service uses."""
    if not path.is_file():
        raise OpsError(f"{path} does not exist; pass --env-file with the file to compare")
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").strip()
        if "=" not in text:
            raise OpsError(f"{path}, line {number}: expected KEY=VALUE")
        key, value = (part.strip() for part in text.split("=", 1))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def fingerprint(value: str, salt: bytes) -> str:
    return hashlib.sha256(salt + value.encode()).hexdigest()[:FINGERPRINT_HEX]


def compare(
    store: SecretStore, cloud: str, stack: str, env: Mapping[str, str], salt: bytes
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(rows of key, entry, verdict); the keys whose verdict is not "same"."""
    rows, differing = [], []
    for key in SECRET_KEYS:
        name = secret_entry_name(cloud, stack, key)
        stored = store.read(name).value.get_secret_value()
        if key not in env:
            verdict = "missing in the env file"
        elif fingerprint(env[key], salt) == fingerprint(stored, salt):
            verdict = "same"
        else:
            verdict = "DIFFERS"
        rows.append((key, name, verdict))
        if verdict != "same":
            differing.append(key)
    return rows, differing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.secrets",
        description="Check a stack's credentials in the secret manager (never shows a value).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    age = sub.add_parser(
        "age",
        help=f"exit 1 when the Flow credentials are older than {ROTATION_PERIOD_DAYS} days",
    )
    check = sub.add_parser("check", help="compare an env file with the secret manager")
    check.add_argument("--env-file", type=Path, required=True, help="e.g. .env")
    for command in (age, check):
        command.add_argument("--stack", required=True, choices=("staging", "prod"))
        command.add_argument(
            "--cloud", choices=("aws", "azure"), help="default: flowchat:cloud of the stack file"
        )
        command.add_argument("--vault-url", help="Azure Key Vault URL (default: the stack's)")
        command.add_argument("--pulumi-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser


def main(
    argv: list[str] | None = None,
    *,
    store_factory: Callable[[str, str, str | None], SecretStore] | None = None,
    now: datetime | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    opener = store_factory or (lambda cloud, stack, url: open_store(cloud, stack, vault_url=url))
    try:
        cloud = args.cloud or cloud_of_stack(args.stack, args.pulumi_dir)
        store = opener(cloud, args.stack, args.vault_url)
        if args.command == "age":
            rows, overdue = age_report(store, cloud, args.stack, now=now)
            write_summary(
                f"### Flow credentials of {args.stack}: age\n\n"
                + md_table(("Entry", "Current version written", "Age"), rows)
            )
            for row in rows:
                say(f"  {row[0]}: written {row[1]}, {row[2]} old")
            if overdue:
                return fail(
                    f"the Flow credentials of {args.stack} are older than the "
                    f"{ROTATION_PERIOD_DAYS}-day rotation period: {', '.join(overdue)}; rotate "
                    "them (workflow rotate-flow-credentials, docs/runbook.md)"
                )
            say(f"the Flow credentials of {args.stack} are within the rotation period")
            return 0
        env = parse_env_file(args.env_file)
        rows, differing = compare(store, cloud, args.stack, env, secrets.token_bytes(16))
        for key, name, verdict in rows:
            say(f"  {key} ({name}): {verdict}")
        if differing:
            return fail(
                f"{args.env_file} does not mirror the secret manager of {args.stack}: "
                f"{', '.join(differing)} differ or are missing"
            )
        say(f"{args.env_file} mirrors the secret manager of {args.stack}")
        return 0
    except OpsError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
