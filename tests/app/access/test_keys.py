"""app.access.keys: key ids, the key file format, and the start-up refusal without a key source."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access.keys import ANONYMOUS, KeyCheck, KeyRing, key_id, parse_key_file, require_key_source
from app.core.settings import SettingsError, load_settings


def test_key_id_is_short_stable_and_not_the_key() -> None:
    assert key_id("k1") == key_id("k1") != key_id("k2")
    assert len(key_id("k1")) == 12 and "k1" not in key_id("k1")
    assert key_id("") != ANONYMOUS


def test_key_id_is_an_hmac_under_the_server_secret() -> None:
    """Without the secret, an id seen in a metric cannot be matched to a guessed key."""
    import hashlib
    import hmac

    assert key_id("k1", "s1") != key_id("k1", "s2")
    assert key_id("k1", "s1") == hmac.new(b"s1", b"k1", hashlib.sha256).hexdigest()[:12]
    assert key_id("k1", "s1") != hashlib.sha256(b"k1").hexdigest()[:12]  # the old unsalted id


def test_key_file_ignores_blank_lines_and_comments() -> None:
    assert parse_key_file("# prod\n\n  alpha  \n#beta\ngamma\n") == ["alpha", "gamma"]


def test_ring_combines_env_and_file_and_never_shows_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("from-file\n")
    ring = KeyRing.from_settings(
        load_settings(API_KEYS="from-env", API_KEYS_FILE=str(path), API_KEYS_CACHE_SECONDS=0)
    )
    assert ring.check("from-env") == (KeyCheck.VALID, key_id("from-env"))
    assert ring.check("from-file") == (KeyCheck.VALID, key_id("from-file"))
    assert ring.check("nope") == (KeyCheck.INVALID, None)
    assert ring.check(None) == (KeyCheck.MISSING, None)
    assert "from-env" not in repr(ring) and "from-file" not in repr(ring)


def test_file_is_cached_for_the_configured_seconds(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("old\n")
    ring = KeyRing(env_keys=(), path=path, cache_seconds=3600)
    assert ring.check("old")[0] == KeyCheck.VALID
    path.write_text("new\n")
    assert ring.check("new")[0] == KeyCheck.INVALID  # still the cached copy


def test_start_up_needs_a_key_source_or_explicit_anonymous(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no API keys"):
        require_key_source(load_settings())
    require_key_source(load_settings(API_KEYS="k"))
    require_key_source(load_settings(API_KEYS_FILE=str(tmp_path / "keys")))
    require_key_source(load_settings(ALLOW_ANONYMOUS_CHAT=True))
