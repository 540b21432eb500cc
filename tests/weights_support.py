"""A weights manager that refuses to give any file: proof that code asked the manager it was given.

Used by the tests that check a run's manager is passed down (metrics in an evaluation, the trainer) rather than
the process-wide one looked up.
"""

from __future__ import annotations

from pathlib import Path


class ManagerUsed(Exception):
    """Raised by :class:`RefusingManager`: the code under test asked it for ``str(error)``."""


class RefusingManager:
    """``path`` answers under ``folder``; ``ensure`` raises :class:`ManagerUsed` with the weights' name."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / name

    def ensure(self, name: str) -> Path:
        raise ManagerUsed(name)
