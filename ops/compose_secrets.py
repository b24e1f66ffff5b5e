"""Write the secret files `docker compose` mounts (compose.yaml `secrets:`), once.

    python -m ops.compose_secrets [--dir secrets]

Creates, in a directory only you can enter (0700; `secrets/` is git-ignored), one file per
secret the compose services read, each with a fresh random value:

- ``REDIS_PASSWORD``: redis-server requires it; API and workers send it;
- ``CHROMA_TOKEN``: Chroma requires it; API and workers send it;
- ``ADMIN_TOKEN``: the document and admin routes;
- ``API_KEYS``: the chat API keys, one per line (``API_KEYS_FILE``): add a line per client;
- ``KEY_ID_SECRET``: the API names each key by an HMAC under it (``app.access.keys``).

and ``ingest-worker.env`` (0600, read by `docker compose` on this machine, not mounted): the
ingestion worker gets REDIS_PASSWORD and CHROMA_TOKEN as environment variables instead of files,
because its parsing child keeps the worker's user in a container and could read a mounted file
(it cannot read the worker's environment: app.ingest.confine).

A file that exists is left alone, so running it again changes nothing (delete a file to get a new
value, then `docker compose up -d --force-recreate`). Files are readable by the containers'
non-root users (0644: compose bind-mounts them as they are); the directory keeps other users of
the machine out. Nothing is printed but the paths.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from app.contracts import (
    ADMIN_TOKEN_SECRET,
    API_KEYS_SECRET,
    CHROMA_TOKEN_SECRET,
    KEY_ID_SECRET_KEY,
    REDIS_PASSWORD_SECRET,
)
from app.core.settings import REPO_ROOT

COMPOSE_SECRETS = (
    REDIS_PASSWORD_SECRET,
    CHROMA_TOKEN_SECRET,
    ADMIN_TOKEN_SECRET,
    API_KEYS_SECRET,
    KEY_ID_SECRET_KEY,
)
DEFAULT_DIR = REPO_ROOT / "secrets"  # compose.yaml's `secrets:` files: ./secrets/<NAME>
INGEST_WORKER_ENV = "ingest-worker.env"
INGEST_WORKER_SECRETS = (REDIS_PASSWORD_SECRET, CHROMA_TOKEN_SECRET)
DIR_MODE = 0o700
FILE_MODE = 0o644  # the containers run as non-root users; the directory is the guard


def write_secrets(directory: Path) -> list[Path]:
    """Create each missing secret file; return the ones created."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    directory.chmod(DIR_MODE)
    created = []
    for name in COMPOSE_SECRETS:
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))  # no newline: Chroma reads the file as is
        path.chmod(FILE_MODE)  # whatever the umask
        created.append(path)
    _write_worker_env(directory)
    return created


def _write_worker_env(directory: Path) -> None:
    """``ingest-worker.env`` from the secret files (rewritten each run: always in step)."""
    path = directory / INGEST_WORKER_ENV
    lines = [f"{name}={(directory / name).read_text()}\n" for name in INGEST_WORKER_SECRETS]
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="default: ./secrets")
    args = parser.parse_args(argv)
    created = write_secrets(args.dir)
    for path in created:
        print(f"created {path}")
    kept = len(COMPOSE_SECRETS) - len(created)
    if kept:
        print(f"kept {kept} existing file(s) in {args.dir}")
    print(f"your chat API key is the line in {args.dir / API_KEYS_SECRET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
