"""``python -m app.local``: the whole service on localhost (``make run``, :func:`.run.main`)."""

from app.local.run import main

if __name__ == "__main__":
    raise SystemExit(main())
