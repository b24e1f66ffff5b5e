"""The HTTP API (FastAPI): health, status, chat, documents, metrics, OpenAI-compatible chat.

May import every package but the worker and local running: it enqueues jobs by name and reads
their results through :mod:`app.chat`, never the worker's code (tests/app/test_layers.py).
"""
