"""ops.keys against a real Redis: a key's usage as the quotas count it, and its reset (the
password path runs in tests/app/api/test_api_tenants.py, against the service's own Redis)."""

from __future__ import annotations

import json

import pytest
import redis

from app.access.keys import key_id
from app.access.quotas import Quotas
from app.core.settings import load_settings
from ops import keys as ops_keys


def test_usage_and_reset_by_key_or_key_id(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEY_ID_SECRET", "bench-secret")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    ident = key_id("team-key", "bench-secret")
    quotas = Quotas(redis.Redis.from_url(redis_url), load_settings(REDIS_URL=redis_url))
    assert quotas.reserve(ident, 1234, 5678) is None
    assert ops_keys.main(["usage", "--key", "team-key", "--redis-url", redis_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["key_id"] == ident
    assert report["flow_tokens_per_day"]["used"] == 1234
    assert report["stored_bytes"]["used"] == 5678
    assert 0 < report["flow_tokens_per_day"]["resets_in"] <= 86400
    assert ops_keys.main(["reset", "--key-id", ident, "--redis-url", redis_url]) == 0
    assert "2 counter(s) reset" in capsys.readouterr().out
    assert quotas.tokens_used(ident) == 0


def test_a_malformed_key_id_is_one_sentence_and_exit_1(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ops_keys.main(["usage", "--key-id", "team-key", "--redis-url", redis_url]) == 1
    assert "is no key id" in capsys.readouterr().err
