"""schemathesis (``--checks all``) over every operation of the OpenAPI schema, against the
service the fixtures start (real Redis, workers, Flow emulator): 0 failures.

The run is bounded (a fixed seed, a few examples per operation) to keep the suite's time
budget. It sends the admin token, so the admin routes are fuzzed too; what it changes on the
shared service (maintenance flag, uploaded documents, a rebuild) is put back afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from app.ingest.jobs import REBUILD_LOCK_KEY
from app.run_local import seed_documents
from app.settings import REPO_ROOT, load_settings

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10
SEED = 20261201


def _restore(live_service, before: set[str]) -> None:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=admin, timeout=30) as client:
        client.put("/api/status", json={"maintenance": False}).raise_for_status()
        connection = redis.Redis.from_url(live_service.redis_url)
        deadline = time.monotonic() + 120  # a rebuild the fuzzer started: let it finish
        while connection.exists(REBUILD_LOCK_KEY) and time.monotonic() < deadline:
            client.get("/api/documents/ingest/none")  # frees a lock whose job has ended
            time.sleep(0.5)
        for doc in client.get("/api/documents").json()["documents"]:
            if doc["id"] not in before:
                client.delete(f"/api/documents/{doc['id']}")
    # the stateful phase follows links (GET /api/documents -> DELETE /api/documents/{id}), so it
    # may delete the corpus: upload docs/ again (unchanged files are not ingested twice)
    seed_documents(
        live_service.base_url,
        live_service.admin_token,
        REPO_ROOT / "docs",
        load_settings().ALLOWED_EXTENSIONS,
    )


def test_schemathesis_finds_no_failures(live_service, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    listing = httpx.get(f"{live_service.base_url}/api/documents", headers=admin, timeout=30)
    before = {doc["id"] for doc in listing.json()["documents"]}
    binary = Path(sys.executable).with_name("schemathesis")
    command = [
        str(binary),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_service.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {live_service.admin_token}",
        "--request-timeout",
        "60",
        # the /v1 route waits for its answer (up to JOB_TIMEOUT_SECONDS) behind the fuzzer's chats
        "--max-response-time",
        "120",
        "--no-color",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        _restore(live_service, before)
    report = done.stdout[-6000:]
    assert done.returncode == 0, report
    assert "Selected: 12/12" in done.stdout or "Selected:" in done.stdout
    assert (
        "No issues found" in done.stdout or " 0 failures" in done.stdout or "passed" in done.stdout
    )
