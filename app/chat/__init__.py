"""The chat: its job contract, results, conversations and per-job answer streams.

Both the API (``app.api``) and the worker (``app.worker``) import this package; it imports
neither of them, so the contract between the two lives in one place. May import core,
observability, contracts, access (a chat is admitted by its key's quotas) and the other service
packages (tests/app/test_layers.py).
"""
