"""Writing files safely: :func:`write_atomic` (a synced temporary file, then a rename) and :func:`refuse_overwrite`.

Used for every file remaster writes: images, reports, checkpoints, plots,
downloaded weights.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import suppress
from pathlib import Path

from remaster.errors import OutputError

__all__ = ["write_atomic", "refuse_overwrite"]


def refuse_overwrite(target: Path, source: Path | None) -> None:
    """Raise :class:`OutputError` when ``target`` exists (saying so when it is ``source`` itself)."""
    if not (target.exists() or target.is_symlink()):
        return
    hint = "pass --overwrite or choose another name"
    with suppress(OSError):
        if source is not None and os.path.samefile(source, target):
            raise OutputError("would overwrite the input", path=target, hint=hint)
    raise OutputError("already exists", path=target, hint=hint)


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a synced temporary file and a rename; no partial file on failure."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target.parent}: {os_reason(exc)}", path=target) from exc
    temp: Path | None = None
    try:
        temp, fd = _create_temp(target)
        with open(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException as exc:  # even Ctrl-C must not leave a temp file behind
        if temp is not None:
            with suppress(OSError):
                temp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"could not write the file: {os_reason(exc)}", path=target,
                              hint=_write_hint(exc)) from exc
        raise


def _create_temp(target: Path) -> tuple[Path, int]:
    # Not NamedTemporaryFile: it creates files 0600, and the rename would hand
    # that mode to the result. os.open with 0666 lets the umask decide, as for
    # any normally created file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue


def os_reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def _write_hint(exc: OSError) -> str | None:
    if exc.errno == errno.ENOSPC:
        return "free some space or write somewhere else"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to"
    return None
