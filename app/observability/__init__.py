"""Observability: JSON logs with a chat's ids (:mod:`.logs`), OpenTelemetry traces
(:mod:`.tracing`) and the Prometheus metrics the processes write to Redis (:mod:`.metrics`).

May import :mod:`app.core` and :mod:`app.contracts` only; everything else imports it.
"""
