"""``with resource:`` for the service's own resources: leaving the block calls ``close()``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    """A mixin: ``__enter__`` returns the object, ``__exit__`` calls its :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
