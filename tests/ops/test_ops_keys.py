"""ops.keys against a real Redis: a key's usage as the quotas count it, and its reset (the
password path runs in tests/app/api/test_api_tenants.py, against the service's own Redis)."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_stack_local_reaches_the_stacks_password_protected_redis(
    ops_redis_plain: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 21: the runbook's `ops.keys usage|reset --stack STACK` reaches the stack the way
    every ops command does: no Redis URL to set, the password read from the stack, not printed."""
    from tests.ops.test_ops_queue import stack_file_for

    url, password = ops_redis_plain
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("FLOWCHAT_LOCAL_STACK", str(stack_file_for(tmp_path, url, password)))
    ident = "0123456789ab"
    quotas = Quotas(redis.Redis.from_url(url, password=password), load_settings(REDIS_URL=url))
    assert quotas.reserve(ident, 321, 0) is None
    assert ops_keys.main(["usage", "--stack", "local", "--key-id", ident, "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["flow_tokens_per_day"]["used"] == 321 and password not in out
    assert ops_keys.main(["reset", "--stack", "local", "--key-id", ident]) == 0
    assert quotas.tokens_used(ident) == 0
    # without --stack and without the password, it says how to reach the stack
    assert ops_keys.main(["usage", "--redis-url", url, "--key-id", ident]) == 1
    err = capsys.readouterr().err
    assert "--stack" in err and "REDIS_PASSWORD" in err and password not in err


def test_help_names_stack(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("usage", "reset"):
        with pytest.raises(SystemExit):
            ops_keys.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--stack {staging,prod,local}" in text and "REDIS_PASSWORD" in text
