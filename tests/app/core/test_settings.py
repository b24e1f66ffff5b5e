from __future__ import annotations

import pytest

from app.contracts import QUEUE_NAME
from app.core.settings import SettingsError, load_settings


def test_defaults_serve_make_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOW_TENANT", "FLOW_AGENT", "FLOW_AGENT_SECRET", "CHROMA_URL", "API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.RQ_QUEUE == QUEUE_NAME == "flow_tasks"
    assert settings.FLOW_APP_TO_ACCESS == "llm-api"
    assert settings.REDIS_URL.startswith("redis://127.0.0.1")
    assert settings.CHROMA_URL is None
    assert not settings.flow_configured
    assert settings.CHUNK_OVERLAP < settings.CHUNK_SIZE


def test_lists_parse_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_EXTENSIONS", "PDF, .txt,md")
    monkeypatch.setenv("API_KEYS", "k1, k2")
    settings = load_settings()
    assert settings.ALLOWED_EXTENSIONS == [".pdf", ".txt", ".md"]
    assert [k.get_secret_value() for k in settings.API_KEYS] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHUNK_SIZE", "abc", "CHUNK_SIZE"),
        ("MAX_QUEUE_DEPTH", "0", "MAX_QUEUE_DEPTH"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL"),
        ("FLOW_BASE_URL", "flow.example", "FLOW_BASE_URL"),
        ("CHROMA_URL", "chroma:8000", "CHROMA_URL"),
        ("MAX_UPLOAD_MB", "-1", "MAX_UPLOAD_MB"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert caught.value.code != 0


def test_overlap_must_be_smaller_than_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNK_SIZE", "200")
    monkeypatch.setenv("CHUNK_OVERLAP", "200")
    with pytest.raises(SettingsError, match="CHUNK_OVERLAP"):
        load_settings()


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_AGENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("FLOW_TENANT", "t")
    monkeypatch.setenv("FLOW_AGENT", "a")
    settings = load_settings()
    assert settings.flow_configured
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())


def test_job_timeout_must_outlive_the_flow_retry_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("FLOW_MAX_RETRIES", "4")  # 5 x 30 s + 4 x 8 s = 182 s
    monkeypatch.setenv("JOB_TIMEOUT_SECONDS", "120")
    with pytest.raises(SettingsError, match=r"JOB_TIMEOUT_SECONDS .*182"):
        load_settings()
    monkeypatch.setenv("JOB_TIMEOUT_SECONDS", "200")
    assert load_settings().JOB_TIMEOUT_SECONDS == 200


def test_an_extension_without_a_loader_is_refused_at_config_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21 item 10: `.rtf` used to be accepted, then fail every upload at ingestion."""
    from app.ingest import LOADERS

    monkeypatch.setenv("ALLOWED_EXTENSIONS", ".md,.rtf")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "ALLOWED_EXTENSIONS" in message and "no loader for .rtf" in message
    assert ", ".join(sorted(LOADERS)) in message
    monkeypatch.setenv("ALLOWED_EXTENSIONS", ",".join(LOADERS))
    assert list(LOADERS) == load_settings().ALLOWED_EXTENSIONS


def test_an_embeddings_model_that_is_not_installed_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21 item 8: EMBEDDINGS_MODEL was read by nothing, so any value was accepted."""
    monkeypatch.setenv("EMBEDDINGS_MODEL", "text-embedding-3-large")
    with pytest.raises(SettingsError, match="EMBEDDINGS_MODEL"):
        load_settings()
    monkeypatch.setenv("EMBEDDINGS_MODEL", "all-MiniLM-L6-v2")
    assert load_settings().EMBEDDINGS_MODEL == "all-MiniLM-L6-v2"
