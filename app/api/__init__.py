"""The HTTP API (FastAPI): health, status, chat, documents, metrics, OpenAI-compatible chat."""
