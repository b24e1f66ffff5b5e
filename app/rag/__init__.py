"""Retrieval: chunking, embeddings, the Chroma vector store, retrieval and prompt assembly."""
