"""Where files that failed their check go: out of the cache, kept for inspection, bounded in number and size."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["quarantine", "QUARANTINE_KEEP", "QUARANTINE_BYTES"]

#: The quarantine keeps at most this many files, newest first (the one just moved always stays) ...
QUARANTINE_KEEP = 4
#: ... and at most this many bytes.
QUARANTINE_BYTES = 2**30


def quarantine(file: Path, folder: Path, *, name: str | None = None) -> Path:
    """Move ``file`` into ``folder`` under ``name`` (default its own) plus a random suffix; the oldest files there
    go once it holds more than :data:`QUARANTINE_KEEP` files or :data:`QUARANTINE_BYTES`. Returns the new path."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / f"{name or file.name}.{secrets.token_hex(4)}"
    os.replace(file, destination)
    kept = sorted((p for p in folder.iterdir() if p.is_file() and p != destination),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    total = destination.stat().st_size
    for number, old in enumerate(kept, start=2):
        total += old.stat().st_size
        if number > QUARANTINE_KEEP or total > QUARANTINE_BYTES:
            old.unlink(missing_ok=True)
    return destination
