"""Which input the current thread is reading, for messages that come from deep inside a decoder.

A library that warns while decoding (Pillow, once per bad TIFF tag) does not say which file it was; the folder
run's reader thread says it here (:func:`reading`), and the ``remaster`` command's console names the file in the
line it prints. Standard library only: the console reads it without importing the run engines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["reading", "current_source"]

_state = threading.local()


@contextmanager
def reading(source: object) -> Iterator[None]:
    """While the block runs, :func:`current_source` in this thread is ``source``."""
    previous = getattr(_state, "source", None)
    _state.source = source
    try:
        yield
    finally:
        _state.source = previous


def current_source() -> object | None:
    """The input this thread is reading, or ``None``."""
    return getattr(_state, "source", None)
