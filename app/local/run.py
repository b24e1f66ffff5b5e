"""``make run``: the whole service on localhost with embedded defaults and no cloud account.

Starts redis-server, Chroma (chromadb's server, with a token), the Flow emulator (unless FLOW_*
credentials are set), the worker pool and the API on http://127.0.0.1:8000 (``PORT`` overrides);
deploys ``docs/`` with ``python -m ops.documents sync`` (the command every stack's deploy runs:
unchanged files are not ingested twice, removed ones are deleted); writes how to reach it (Redis
URL, the files holding the Redis password, the admin token and the API keys, the API URL) to
``var/local-stack.json`` (mode 0600), which the ops commands read for ``--stack local``, and
prints that path, the URL and an example; stops every process it started on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.contracts import CHAT_PATH, DEFAULT_PORT
from app.core.settings import REPO_ROOT, SettingsError, load_settings
from app.local.stack import (
    LocalStack,
    Ports,
    StartupError,
    free_port,
    port_is_free,
)
from app.local.stack_file import STACK_FILE_NAME
from app.observability.logs import configure_logging
from app.rag.model_setup import ModelSetupError, setup


def say(message: str) -> None:
    print(f"[flowchat] {message}", flush=True)


# the OCR of scanned PDF pages (app.ingest.ocr): program -> Debian package
OCR_PACKAGES = {"tesseract": "tesseract-ocr", "pdftoppm": "poppler-utils"}
OCR_EXTRA_PACKAGES = ("tesseract-ocr-eng",)  # the language app.ingest.ocr reads


def can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str]) -> bool:
    """Install Debian packages when running as root on a system with apt-get."""
    if not can_apt_install():
        return False
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
    return done.returncode == 0


def ensure_ocr_tools() -> list[str]:
    """Install the OCR programs when missing (as root), else say exactly what to install.
    Returns the programs still missing: the service runs without them, but scanned PDFs
    then fail with a reason naming them."""
    missing = [tool for tool in OCR_PACKAGES if shutil.which(tool) is None]
    if not missing:
        return []
    packages = [OCR_PACKAGES[tool] for tool in missing]
    if "tesseract" in missing:
        packages.extend(OCR_EXTRA_PACKAGES)
    if can_apt_install():
        say(f"OCR tools missing ({', '.join(missing)}): installing {' '.join(packages)} ...")
        apt_install(packages)
    still = [tool for tool in OCR_PACKAGES if shutil.which(tool) is None]
    if still:
        say(
            f"OCR is not available (missing: {', '.join(still)}); scanned PDFs will fail. "
            f"Install with `sudo apt-get install {' '.join(packages)}` (Debian/Ubuntu) or "
            "`brew install tesseract poppler` (macOS)."
        )
    return still


def ensure_redis_server() -> None:
    if shutil.which("redis-server"):
        return
    if can_apt_install():
        say("redis-server is missing: installing Debian's redis-server package ...")
        if apt_install(["redis-server"]) and shutil.which("redis-server"):
            return
    raise StartupError(
        "redis-server is not installed. Install it with `sudo apt-get install redis-server` "
        "(Debian/Ubuntu) or `brew install redis` (macOS), then run `make run` again."
    )


def admin_token(data_dir: Path) -> tuple[str, str]:
    """The admin token and where it comes from: ADMIN_TOKEN, else one generated once and kept
    (owner-readable only) in the data directory."""
    if os.environ.get("ADMIN_TOKEN"):
        return os.environ["ADMIN_TOKEN"], "the ADMIN_TOKEN environment variable"
    path = data_dir / "admin-token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip(), f"stored in {path}"


def seed_documents(base_url: str, token: str, docs_dir: Path, allowed: list[str]) -> int:
    """Deploy ``docs_dir`` the way every stack's deploy does (``ops.documents sync``); return
    the number of documents the stack serves from it."""
    from ops.documents import sync
    from ops.summary import OpsError

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        try:
            plan = sync(client, docs_dir, allowed, timeout=600, progress=say)
        except OpsError as exc:
            raise StartupError(f"deploying {docs_dir}: {exc}") from None
    return len(plan.upload) + len(plan.unchanged)


def start_seeded(stack: LocalStack, docs_dir: Path = REPO_ROOT / "docs") -> LocalStack:
    """Start every process of ``stack``, then ingest ``docs_dir`` through its API: what the live
    test fixtures and the benchmarks run before their first request. Stops what it started
    when either step fails."""
    stack.start()
    try:
        seed_documents(
            stack.base_url, stack.admin_token, docs_dir, load_settings().ALLOWED_EXTENSIONS
        )
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 2)))
    parser.add_argument(
        "--ingest-workers", type=int, default=int(os.environ.get("INGEST_WORKERS", 1))
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="chats in flight per worker (WORKER_THREADS)"
    )
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "var")
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs")
    args = parser.parse_args(argv)
    # children log to var/logs: human-readable when `make run` runs on a terminal, else JSON
    os.environ.setdefault("LOG_FORMAT", "console" if sys.stdout.isatty() else "json")
    configure_logging("run_local")

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not port_is_free(args.port):
        print(f"port {args.port} is in use; free it or run `PORT=8080 make run`", file=sys.stderr)
        return 2
    try:
        say("checking the embedding model ...")
        setup()
        ensure_redis_server()
        ensure_ocr_tools()
    except (ModelSetupError, StartupError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1

    args.data_dir.mkdir(parents=True, exist_ok=True)
    ports = Ports(api=args.port, redis=free_port(), chroma=free_port(), flow=free_port())
    token, token_source = admin_token(args.data_dir)
    threads = args.threads or settings.WORKER_THREADS
    stack = LocalStack(
        root=args.data_dir,
        ports=ports,
        workers=args.workers,
        threads=threads,
        ingest_workers=args.ingest_workers,
        admin_token=token,
    )
    if stack.local_budget:
        say(
            "the Flow emulator answers: chats are not held to the production daily Flow-token "
            "budget nor to its bound on the bytes a key's results hold (set FLOW_TOKENS_PER_DAY "
            "or MAX_STORED_BYTES_PER_KEY to try one; see or reset a key's usage with "
            "`python -m ops.keys usage|reset --stack local --key-id ID`)"
        )
    if stack.anonymous_chat:
        say(
            "chat is open without an API key (ALLOW_ANONYMOUS_CHAT=true, loopback only); "
            "set API_KEYS to require keys"
        )
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for step, start in (
            ("Redis", stack.start_redis),
            ("Chroma", stack.start_chroma),
            (
                "the Flow emulator" if not stack.flow_configured else "(Flow: real gateway)",
                stack.start_emulator,
            ),
            (f"{args.workers} chat workers x {threads} chats in flight", stack.start_workers),
            (f"{args.ingest_workers} ingestion worker(s)", stack.start_ingest_workers),
            ("the API", stack.start_api),
        ):
            say(f"starting {step} ...")
            start()
        shown = (
            args.docs.relative_to(REPO_ROOT) if args.docs.is_relative_to(REPO_ROOT) else args.docs
        )
        say(f"ingesting {shown} ...")
        count = seed_documents(
            stack.base_url, stack.admin_token, args.docs, settings.ALLOWED_EXTENSIONS
        )
        say(f"{count} document(s) ready")
        stack_file = stack.write_stack_file(args.data_dir / STACK_FILE_NAME)
        print(
            f"\nflowchat is running on {stack.base_url}  (logs in {args.data_dir / 'logs'})\n"
            f"  connection details (ops commands: --stack local): {stack_file}\n"
            f"  admin token (document routes): {token_source}\n"
            f"  try:  curl -s -X POST {stack.base_url}{CHAT_PATH} "
            "-H 'Content-Type: application/json' "
            '-d \'{"message": "How do I restart the worker?"}\'\n'
            f"  then: curl -s '{stack.base_url}{CHAT_PATH}/<id>?wait=10'\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while True:  # a crashed child is restarted with backoff; the others keep serving
            stack.supervise(say)
            time.sleep(1)
    except KeyboardInterrupt:
        say("stopping ...")
        return 0
    except (StartupError, httpx.HTTPError) as exc:
        print(f"flowchat stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        (args.data_dir / STACK_FILE_NAME).unlink(missing_ok=True)
        say("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
