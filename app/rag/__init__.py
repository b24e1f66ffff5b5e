"""Retrieval: chunking, embeddings, the Chroma vector store, retrieval and prompt assembly.

May import core, observability, contracts and the other service packages (chat, ingest, flow,
documents); never api, worker, local or access (tests/app/test_layers.py).
"""
