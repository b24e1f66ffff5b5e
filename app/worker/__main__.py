"""``python -m app.worker``: the chat worker pool (:func:`app.worker.cli.main`)."""

from app.worker.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
