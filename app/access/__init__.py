"""Access control: API keys and their ids (:mod:`.keys`) and per-key request and Flow-token
quotas counted in Redis (:mod:`.quotas`).

May import :mod:`app.core`, :mod:`app.observability` and :mod:`app.contracts`; the API and the
workers import it.
"""
