"""The service's foundations: settings, Redis clients, job-failure reasons, maintenance state.

Every other package builds on these modules, so they import nothing of ``app`` but
:mod:`app.contracts` (and each other); in particular never observability, so logging can read
the settings without a circle (``LoggingSettings`` lives in :mod:`app.core.settings`).
"""
