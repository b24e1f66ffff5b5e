"""Chat API keys: where they come from, how a request's key is checked, and its short identity.

Keys come from ``API_KEYS`` (comma-separated) and/or ``API_KEYS_FILE`` (one key per line, blank
lines and ``#`` comments ignored; in a pod the file is the External Secrets mount, see
``app.contracts.API_KEYS_FILE_IN_POD``). The file is re-read at request time, at most every
``API_KEYS_CACHE_SECONDS``, so adding or revoking a key needs no restart.

Metrics, logs, jobs and quotas name a key by :func:`key_id`, a short HMAC under the server's
``KEY_ID_SECRET``, never by the key itself. This module imports neither the API nor the worker,
so both can use it.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.settings import Settings, SettingsError
from app.observability.logs import add_secrets, hmac_id

ANONYMOUS = "anonymous"  # the key_id of keyless requests when ALLOW_ANONYMOUS_CHAT is on
KEY_ID_LENGTH = 12


def key_id(key: str, secret: str = "") -> str:
    """A short, stable, non-reversible name of ``key`` for metrics, logs and jobs: an HMAC under
    ``secret`` (the server's ``KEY_ID_SECRET``)."""
    return hmac_id(key, secret)[:KEY_ID_LENGTH]


def parse_key_file(text: str) -> list[str]:
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


class KeyCheck:
    """Outcome of checking a presented key."""

    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"


@dataclass
class KeyRing:
    """The valid keys of the service, re-read from ``API_KEYS_FILE`` every few seconds."""

    env_keys: tuple[str, ...]
    path: Path | None
    cache_seconds: float
    secret: str = field(default="", repr=False)  # KEY_ID_SECRET: key ids are HMACs under it
    _cached: tuple[float, tuple[str, ...]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(
            env_keys=tuple(k.get_secret_value() for k in settings.API_KEYS if k.get_secret_value()),
            path=settings.API_KEYS_FILE,
            cache_seconds=settings.API_KEYS_CACHE_SECONDS,
            secret=settings.KEY_ID_SECRET.get_secret_value(),
        )

    def __repr__(self) -> str:  # never the keys nor the secret
        return f"KeyRing(env_keys={len(self.env_keys)}, path={self.path})"

    def _file_keys(self) -> tuple[str, ...]:
        if self.path is None:
            return ()
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self._lock:
            try:
                keys = tuple(parse_key_file(self.path.read_text(encoding="utf-8")))
            except OSError:
                # a missing or unreadable file means no keys from it: closed, not open
                keys = ()
            add_secrets(keys)  # a key added to the file is blanked from the logs from now on
            self._cached = (now, keys)
        return keys

    def key_id(self, key: str) -> str:
        return key_id(key, self.secret)

    def keys(self) -> tuple[str, ...]:
        return self.env_keys + self._file_keys()

    def check(self, given: str | None) -> tuple[str, str | None]:
        """(:class:`KeyCheck` outcome, key_id of the matching key)."""
        if not given:
            return KeyCheck.MISSING, None
        presented = given.encode()
        match = False
        for key in self.keys():  # no early exit: the time taken does not depend on the position
            match |= secrets.compare_digest(presented, key.encode())
        if match:
            return KeyCheck.VALID, self.key_id(given)
        return KeyCheck.INVALID, None


def require_key_source(settings: Settings) -> None:
    """Refuse to start an API that would serve chat to anyone: no key source and no explicit
    ``ALLOW_ANONYMOUS_CHAT=true``. Raises :class:`SettingsError` (exits non-zero)."""
    if settings.ALLOW_ANONYMOUS_CHAT:
        return
    if settings.API_KEYS or settings.API_KEYS_FILE is not None:
        return
    raise SettingsError(
        "no API keys: set API_KEYS or API_KEYS_FILE, or ALLOW_ANONYMOUS_CHAT=true to serve "
        "chat without keys"
    )
