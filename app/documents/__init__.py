"""Uploaded documents on disk: content-addressed files plus one JSON metadata file each.

May import core, observability, contracts and the other service packages; never api, worker,
local or access (tests/app/test_layers.py).
"""

from app.documents.store import (
    DocumentMeta,
    DocumentStatus,
    DocumentStore,
    UploadRejected,
    sanitize_filename,
)

__all__ = ["DocumentMeta", "DocumentStatus", "DocumentStore", "UploadRejected", "sanitize_filename"]
