"""Chroma in the stacks requires `CHROMA_TOKEN` (issue 18, item 5).

The chromadb/chroma 1.x image runs chromadb's Rust server, which has no token authentication
(its `CHROMA_SERVER_AUTHN_*` variables are ignored: `chroma run` of chromadb 1.5.9 answers every
request without one). chromadb's Python server, `uvicorn chromadb.app:app`, enforces them and
stores its data the same way (the same Rust bindings). The service image carries chromadb (the
API and workers are its clients), so the Chroma StatefulSet runs that server from the service
image, with the token from the stack's Secret (delivered by External Secrets like every other
entry of `app.contracts.STACK_SECRET_KEYS`). Every other process sends it as
`Authorization: Bearer` (`CHROMA_TOKEN`, `app.rag.vectorstore.make_client`); the heartbeat the
probes call stays open.
"""

from __future__ import annotations

from app.contracts import (
    CHROMA_AUTHN_CREDENTIALS_ENV,
    CHROMA_AUTHN_PROVIDER,
    CHROMA_AUTHN_PROVIDER_ENV,
    CHROMA_SERVER_APP,
    CHROMA_SERVER_ENV,
    CHROMA_TOKEN_SECRET,
)


def chroma_server(image: str, secret_name: str, port: int, data_dir: str) -> dict[str, object]:
    """The Chroma container's image, command and environment (the caller adds ports, probes,
    volumes, resources and its security context)."""
    return {
        "name": "chroma",
        "image": image,
        "command": ["python", "-m", "uvicorn", CHROMA_SERVER_APP],
        "args": ["--host", "0.0.0.0", "--port", str(port), "--no-access-log"],
        "env": [
            {"name": "IS_PERSISTENT", "value": "TRUE"},
            {"name": "PERSIST_DIRECTORY", "value": data_dir},
            *({"name": name, "value": value} for name, value in CHROMA_SERVER_ENV.items()),
            {"name": "HOME", "value": "/tmp"},  # read-only root filesystem: caches go to /tmp
            {"name": CHROMA_AUTHN_PROVIDER_ENV, "value": CHROMA_AUTHN_PROVIDER},
            {
                "name": CHROMA_AUTHN_CREDENTIALS_ENV,
                "valueFrom": {"secretKeyRef": {"name": secret_name, "key": CHROMA_TOKEN_SECRET}},
            },
        ],
    }
