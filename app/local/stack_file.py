"""How to reach a running local stack: the connection file ``make run`` writes and the ops
commands' ``--stack local`` reads. Secrets are never in it, only the paths of the owner-only
files that hold them; neither side needs the other's process machinery to share it."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from app.core.settings import REPO_ROOT

# where `make run` writes how to reach it (the ops commands' `--stack local` reads it);
# FLOWCHAT_LOCAL_STACK points them at another file (the tests' production-shaped stack)
STACK_FILE_NAME = "local-stack.json"
STACK_FILE_ENV = "FLOWCHAT_LOCAL_STACK"
DEFAULT_STACK_FILE = REPO_ROOT / "var" / STACK_FILE_NAME


class StackFile(BaseModel):
    """Connection details of a running local stack. Secrets are never in it, only the paths of
    the owner-only files that hold them."""

    redis_url: str  # redis://127.0.0.1:PORT/0, without the password
    redis_password_file: Path
    admin_token_file: Path
    api_url: str
    api_key_file: Path | None = None  # one key per line (API_KEYS_FILE); None: chat is open


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), replacing the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)
    return path
