"""``python -m app.flow.emulator``: the Flow emulator on a port (:func:`.server.main`)."""

from app.flow.emulator.server import main

if __name__ == "__main__":
    raise SystemExit(main())
