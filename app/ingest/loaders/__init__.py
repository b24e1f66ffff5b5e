"""One loader per file type. Each turns a file into a ``LoadedDocument`` of ``Section``s:

- ``text``: the whole file as one section;
- ``markdown``: one section per heading, headed by the heading path ("Runbooks > Restart Worker");
- ``html``: text only (no markup, scripts or styles), one section per h1-h6;
- ``pdf``: one section per page (1-based), image-only pages through OCR;
- ``docx``: one section per heading style.

``app.ingest.load_document`` picks the loader from the file's extension.
"""
