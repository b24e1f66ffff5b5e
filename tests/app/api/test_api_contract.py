"""schemathesis (``--checks all``) over every operation of the OpenAPI schema, against a
service started by the fixtures (real Redis, a worker, the Flow emulator): 0 failures.

The run is bounded (a fixed seed, a few examples per operation) to keep the suite's time
budget. It sends the admin token, so the admin routes are fuzzed too; its stateful phase
follows links (``GET /api/documents`` -> ``DELETE /api/documents/{id}``) and starts rebuilds,
so it gets a service of its own (``fuzzed_service``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from app.local.stack import LocalStack

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10
SEED = 20261201


def test_schemathesis_finds_no_failures(fuzzed_service: LocalStack, tmp_path: Path) -> None:
    base_url = fuzzed_service.base_url
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--header", f"Authorization: Bearer {fuzzed_service.admin_token}",
        "--request-timeout", "60",
        # the /v1 route waits for its answer (up to JOB_TIMEOUT_SECONDS) behind the fuzzer's chats
        "--max-response-time", "120",
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = done.stdout[-6000:]
    assert done.returncode == 0, report
    paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    assert f"{operations} selected / {operations} total" in done.stdout  # every operation
    assert "Failures:" not in done.stdout
