"""Deploy the knowledge base from git: ``python -m ops.documents sync --stack S DIR``.

The documents a stack serves are the files of a repository folder (``docs/``). ``sync``
compares them with the stack's documents by content hash (``GET /api/documents`` gives each
document's ``filename`` and ``sha256``), prints the plan first, then

1. uploads what is new or changed (``POST /api/documents``, admin token), and what the stack
   holds but failed to ingest;
2. waits until every upload is ``ingested`` (or ``failed``: exit 1 naming it);
3. deletes the stack's documents that are not in the folder any more, and the old versions
   of changed files (after the new ones are searchable, so answers never lose their source).

A second run finds nothing to do. ``--dry-run`` prints the plan and changes nothing (the PR
preview shows it). Only files with an extension in ``ALLOWED_EXTENSIONS`` are documents; the
smoke prompts file (``docs/smoke-prompts.yaml``) lives in the same folder but is not uploaded.

``reprocess --ocr ID`` queues one stored document again with OCR forced on every PDF page
(for a scan whose text layer is garbage).

The stack is ``--stack staging|prod|local`` (``ops.stack``), or ``--base-url URL`` with the
admin token in the variable named by ``--admin-token-env``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from app.contracts import DOCUMENTS_PATH
from app.observability.logs import configure_logging
from ops.summary import OpsError, fail, md_table, say, write_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = REPO_ROOT / "docs"
PENDING = ("queued", "ingesting")
UPLOAD_BATCH = 20  # app.api.documents.MAX_FILES_PER_REQUEST


class LocalDocument(BaseModel):
    name: str
    path: Path
    sha256: str


class Plan(BaseModel):
    upload: list[LocalDocument] = []
    new: list[str] = []  # names among upload that the stack does not hold at all
    delete: list[dict[str, Any]] = []  # remote documents to remove (after the uploads)
    unchanged: list[str] = []

    @property
    def empty(self) -> bool:
        return not self.upload and not self.delete

    def lines(self) -> list[str]:
        out = []
        for doc in self.upload:
            out.append(f"+ {doc.name} (new)" if doc.name in self.new else f"~ {doc.name} (changed)")
        replaced = {d.name for d in self.upload}
        for doc in self.delete:
            if doc["filename"] not in replaced:
                out.append(f"- {doc['filename']} (removed from the folder)")
        out.append(f"= {len(self.unchanged)} unchanged")
        return out


def local_documents(folder: Path, allowed: list[str]) -> list[LocalDocument]:
    """The folder's documents (allowed extensions, hidden files skipped), by file name."""
    if not folder.is_dir():
        raise OpsError(f"{folder} is not a directory")
    found: dict[str, LocalDocument] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        if path.suffix.lower() not in allowed:
            continue
        if path.name in found:
            raise OpsError(
                f"two documents are named {path.name} ({found[path.name].path} and {path}); "
                "the service keys documents by file name: rename one"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        found[path.name] = LocalDocument(name=path.name, path=path, sha256=digest)
    return list(found.values())


def make_plan(local: list[LocalDocument], remote: list[dict[str, Any]]) -> Plan:
    plan = Plan()
    held = {(d["filename"], d["sha256"]): d for d in remote}
    names = {d["filename"] for d in remote}
    wanted = {(d.name, d.sha256) for d in local}
    for doc in local:
        current = held.get((doc.name, doc.sha256))
        if current is not None and current["status"] != "failed":
            plan.unchanged.append(doc.name)
            continue
        plan.upload.append(doc)
        if doc.name not in names:
            plan.new.append(doc.name)
    plan.delete = [d for d in remote if (d["filename"], d["sha256"]) not in wanted]
    return plan


def _check(response: httpx.Response, action: str) -> httpx.Response:
    if response.status_code in (401, 403):
        raise OpsError(
            f"{action}: the service refused the admin token (HTTP {response.status_code})"
        )
    if response.status_code >= 400:
        raise OpsError(f"{action}: HTTP {response.status_code}: {response.text[:200]}")
    return response


def remote_documents(client: httpx.Client) -> list[dict[str, Any]]:
    try:
        response = client.get(DOCUMENTS_PATH)
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot reach {client.base_url}: {exc}") from None
    return list(_check(response, "listing the documents").json()["documents"])


def wait_ingested(
    client: httpx.Client,
    ids: set[str],
    *,
    timeout: float,
    interval: float = 0.5,
) -> list[dict[str, Any]]:
    """Wait until none of ``ids`` is queued or ingesting; return their final records."""
    deadline = time.monotonic() + timeout
    while True:
        docs = [d for d in remote_documents(client) if d["id"] in ids]
        if not any(d["status"] in PENDING for d in docs):
            return docs
        if time.monotonic() > deadline:
            pending = sorted(d["filename"] for d in docs if d["status"] in PENDING)
            raise OpsError(
                f"ingestion did not finish within {timeout:g} s (still waiting: "
                f"{', '.join(pending)}); see the ingestion workers' logs"
            )
        time.sleep(interval)


def apply(
    client: httpx.Client,
    plan: Plan,
    *,
    timeout: float = 600.0,
    progress: Callable[[str], None] = say,
) -> int:
    """Upload, wait, then delete; return the number of documents now ingested from the upload."""
    ids: set[str] = set()
    for start in range(0, len(plan.upload), UPLOAD_BATCH):
        batch = plan.upload[start : start + UPLOAD_BATCH]
        files = [("files", (d.name, d.path.read_bytes())) for d in batch]
        response = _check(client.post(DOCUMENTS_PATH, files=files), "uploading documents")
        body = response.json()
        for item in body.get("rejected") or []:
            raise OpsError(f"the service rejected {item['filename']}: {item['reason']}")
        ids |= {d["id"] for d in body["documents"]}
    if ids:
        progress(f"uploaded {len(ids)} document(s); waiting for ingestion ...")
        final = wait_ingested(client, ids, timeout=timeout)
        failed = [d for d in final if d["status"] == "failed"]
        if failed:
            raise OpsError(
                "could not ingest "
                + "; ".join(f"{d['filename']}: {d.get('error') or 'no reason'}" for d in failed)
            )
    for doc in plan.delete:
        if doc["id"] in ids:  # the same content was uploaded again under a kept name
            continue
        _check(client.delete(f"{DOCUMENTS_PATH}/{doc['id']}"), f"deleting {doc['filename']}")
        progress(f"deleted {doc['filename']} ({doc['id']})")
    return len(ids)


def sync(
    client: httpx.Client,
    folder: Path,
    allowed: list[str],
    *,
    dry_run: bool = False,
    timeout: float = 600.0,
    progress: Callable[[str], None] = say,
) -> Plan:
    """Print the plan, then (unless ``dry_run``) apply it."""
    plan = make_plan(local_documents(folder, allowed), remote_documents(client))
    progress(f"Plan for {folder} -> {client.base_url}:")
    for line in plan.lines():
        progress(f"  {line}")
    if plan.empty:
        progress("Nothing to do: the stack serves exactly the folder's documents.")
        return plan
    if dry_run:
        progress("Dry run: nothing changed.")
        return plan
    apply(client, plan, timeout=timeout, progress=progress)
    progress(f"Synced: {len(plan.upload)} uploaded, {len(plan.delete)} deleted.")
    return plan


def reprocess(client: httpx.Client, document_id: str, *, ocr: bool, timeout: float) -> dict:
    response = client.post(f"{DOCUMENTS_PATH}/{document_id}/reprocess", params={"ocr": ocr})
    _check(response, f"reprocessing {document_id}")
    (doc,) = wait_ingested(client, {document_id}, timeout=timeout)
    if doc["status"] == "failed":
        raise OpsError(f"{doc['filename']} failed again: {doc.get('error') or 'no reason'}")
    return doc


def build_parser() -> argparse.ArgumentParser:
    from ops.stack import add_stack_arguments

    parser = argparse.ArgumentParser(
        prog="python -m ops.documents",
        description="Deploy the knowledge base (a folder of the repository) to a stack.",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_stack_arguments(common)
    common.add_argument("--base-url", help="service URL (instead of --stack)")
    common.add_argument(
        "--admin-token-env",
        default="ADMIN_TOKEN",
        help="with --base-url: the variable holding the admin token (default: %(default)s)",
    )
    common.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the ingestion"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "sync", parents=[common], help="upload new/changed documents, delete removed ones"
    )
    s.add_argument("folder", type=Path, nargs="?", default=DEFAULT_FOLDER, help="default: docs/")
    s.add_argument("--dry-run", action="store_true", help="print which documents would change")
    s.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="plan against another checkout's folder instead of a stack (the PR preview: "
        "base docs/ -> head docs/); implies --dry-run",
    )
    r = sub.add_parser("reprocess", parents=[common], help="ingest one stored document again")
    r.add_argument("--ocr", action="store_true", help="OCR every page of a PDF")
    r.add_argument("document_id", help="the document's id (GET /api/documents)")
    return parser


def _client(args: argparse.Namespace, stack_api: str | None, token: str | None) -> httpx.Client:
    base_url = args.base_url or stack_api
    if not base_url:
        raise OpsError("give --stack or --base-url")
    if not token:
        raise OpsError(f"no admin token: set {args.admin_token_env} or use --stack")
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=60)


def run(args: argparse.Namespace) -> int:
    from app.core.settings import load_settings
    from ops.stack import resolve

    if args.command == "sync" and args.against is not None:
        allowed = load_settings().ALLOWED_EXTENSIONS
        base = [
            {"id": d.sha256[:16], "filename": d.name, "sha256": d.sha256, "status": "ingested"}
            for d in local_documents(args.against, allowed)
        ] if args.against.is_dir() else []  # fmt: skip
        plan = make_plan(local_documents(args.folder, allowed), base)
        say(f"Plan for {args.folder} against {args.against}:")
        for line in plan.lines():
            say(f"  {line}")
        rows = [(line[:1], line[2:]) for line in plan.lines()]
        write_summary(
            f"### Knowledge base ({args.folder}) changes\n\n" + md_table(("", "Document"), rows)
        )
        return 0
    api_url, token = None, os.environ.get(args.admin_token_env) or None
    if args.stack and not args.base_url:
        with resolve(
            args.stack, context=args.context, kubeconfig=args.kubeconfig, need_redis=False
        ) as target:
            api_url = target.api_url
            token = target.admin_token.get_secret_value() if target.admin_token else token
    with _client(args, api_url, token) as client:
        if args.command == "reprocess":
            doc = reprocess(client, args.document_id, ocr=args.ocr, timeout=args.timeout)
            say(f"{doc['filename']} re-ingested: {doc.get('chunks')} chunks")
            return 0
        plan = sync(
            client,
            args.folder,
            load_settings().ALLOWED_EXTENSIONS,
            dry_run=args.dry_run,
            timeout=args.timeout,
        )
    title = "Knowledge base plan" if args.dry_run else "Knowledge base sync"
    rows = [(line[:1], line[2:]) for line in plan.lines()]
    write_summary(f"### {title} ({args.folder})\n\n" + md_table(("", "Document"), rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ops.documents", stream=sys.stderr)
    try:
        return run(args)
    except OpsError as exc:
        return fail(str(exc))
    except httpx.HTTPError as exc:
        return fail(f"lost contact with the service: {exc}")
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
