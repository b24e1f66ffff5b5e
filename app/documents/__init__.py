"""Uploaded documents on disk: content-addressed files plus one JSON metadata file each."""

from app.documents.store import (
    DocumentMeta,
    DocumentStatus,
    DocumentStore,
    UploadRejected,
    sanitize_filename,
)

__all__ = ["DocumentMeta", "DocumentStatus", "DocumentStore", "UploadRejected", "sanitize_filename"]
