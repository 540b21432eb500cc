"""Writing files safely: :func:`write_atomic` (a synced temporary file, then published) and :func:`refuse_overwrite`.

Used for every file remaster writes: images, reports, checkpoints, plots,
downloaded weights. Every file written is a regular file: a FIFO, a device node
or a socket in the way is refused, never replaced. A file published without
``replace`` appears only if nothing is there yet, atomically: of two runs
writing the same name at once, one writes it and the other is told it exists.
A temporary file is locked by its writer while it lives; one a killed writer
left behind is removed by the next write into that folder
(:func:`clean_leftovers`), never one of a live run.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Collection
from contextlib import suppress
from pathlib import Path

from remaster.errors import OutputError

try:  # POSIX: temporary files are locked by their writer, so a killed writer's leftovers can be told apart
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # None marks the platform without it; callers check

__all__ = ["write_atomic", "refuse_overwrite", "check_regular", "clean_leftovers", "LEFTOVER_AGE_S", "publish",
           "create_temporary", "remove_temporaries"]

#: A temporary file younger than this is never taken for a leftover (it may be being created this instant).
LEFTOVER_AGE_S = 10.0
#: The names :func:`write_atomic` gives its temporary files: ``.NAME.XXXXXXXX.tmp``.
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
_TEMP_TAIL = len(".XXXXXXXX.tmp")  # what follows NAME in a temporary file's name
_cleaned: set[str] = set()  # folders already cleaned by this process
_cleaned_lock = threading.Lock()


def refuse_overwrite(target: Path, source: Path | None) -> None:
    """Raise :class:`OutputError` when ``target`` exists (saying so when it is ``source`` itself)."""
    if not (target.exists() or target.is_symlink()):
        return
    hint = "pass {opt:overwrite} or choose another name"
    with suppress(OSError):
        if source is not None and os.path.samefile(source, target):
            raise OutputError("would overwrite the input", path=target, hint=hint)
    raise OutputError("already exists", path=target, hint=hint)


def check_regular(target: Path) -> None:
    """Raise :class:`OutputError` when something other than a regular file (or a link) is at ``target``.

    A FIFO, device node or socket there would be replaced by a rename (as root, ``/dev/null`` itself), or
    block a writer: remaster writes only regular files.
    """
    try:
        mode = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise OutputError(f"cannot look at the output: {os_reason(exc)}", path=target) from exc
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
    raise OutputError(f"is {kind}; remaster writes only regular files", path=target,
                      hint="choose a file name that is free or holds a regular file")


def write_atomic(target: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``target`` through a synced temporary file, then publish it; no partial file on failure.

    Args:
        target: The file to write; it must be a regular file if it exists (:func:`check_regular`).
        data: Its contents.
        replace: Replace a file already at ``target`` (atomically). Without it the file is published only if
            nothing is there at that moment, so a concurrent writer of the same name cannot be overwritten.

    Raises:
        OutputError: ``target`` exists and is not a regular file; it exists and ``replace`` is off; or the file
            could not be written.
    """
    check_regular(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {target.parent}: {os_reason(exc)}", path=target) from exc
    clean_leftovers(target.parent)
    temp: Path | None = None
    fd = -1
    try:
        temp, fd = _create_temp(target)  # locked until it is closed: while we live, no cleaner takes it
        with open(fd, "wb", closefd=False) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        publish(temp, target, replace=replace)
    except BaseException as exc:  # even Ctrl-C must not leave a temp file behind
        if temp is not None:
            with suppress(OSError):
                temp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"could not write the file: {os_reason(exc)}", path=target,
                              hint=_write_hint(exc)) from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def clean_leftovers(folder: Path) -> None:
    """Remove the temporary files a killed remaster left in ``folder`` (once per folder and process).

    A temporary file is locked by the process writing it until it is published or removed, and the kernel drops
    the lock when that process dies: so a temporary file that can be locked, and is older than
    :data:`LEFTOVER_AGE_S`, has no owner left. A live run's files, and anything not named as remaster's
    temporaries are, are never touched. Without ``fcntl`` (Windows) nothing is removed.
    """
    if fcntl is None:
        return
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        with suppress(OSError):
            if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < LEFTOVER_AGE_S:
                continue
            _remove_unowned(entry.path)


def remove_temporaries(folder: Path, names: Collection[str], *, until: float) -> list[Path]:
    """Remove the temporary files of the outputs named ``names`` in ``folder`` (``.NAME.XXXXXXXX.tmp``), whatever
    their age, once no process writes them: a run that stopped its own writers removes what they left.

    A temporary file still locked has a live writer: it is waited for, until the :func:`time.monotonic` time
    ``until``, and then left to it. Without ``fcntl`` (Windows) they are removed at once.

    Returns:
        The temporary files left because their writer still held them at ``until``.
    """
    while True:
        try:
            entries = [entry.path for entry in os.scandir(folder)
                       if _TEMP_NAME.fullmatch(entry.name) and entry.name[1:-_TEMP_TAIL] in names
                       and entry.is_file(follow_symlinks=False)]
        except OSError:
            return []
        left = [Path(path) for path in entries if not _remove_unowned(path)]
        if not left or time.monotonic() >= until:
            return left
        time.sleep(0.02)


def _remove_unowned(path: str) -> bool:
    """Remove the temporary file ``path`` unless a live process holds its lock; whether it is gone."""
    if fcntl is None:
        with suppress(OSError):
            os.unlink(path)
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone already, or not ours to open: nothing to wait for
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # its writer is alive
        return False
    else:
        with suppress(OSError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def publish(temp: Path, target: Path, *, replace: bool) -> None:
    """Give the finished temporary file ``temp`` (from :func:`create_temporary`) the name ``target``: replacing a
    regular file there when ``replace``, else only if the name is free at that moment (atomically).

    Raises:
        OutputError: something other than a regular file is at ``target``, or (without ``replace``) a file is.
    """
    if replace:
        check_regular(target)  # again: something may have been put there meanwhile
        os.replace(temp, target)
    else:
        _publish_new(temp, target)


def create_temporary(target: Path) -> tuple[Path, int]:
    """A new temporary file beside ``target`` (``.NAME.XXXXXXXX.tmp``), open for writing and locked by this process
    until its descriptor is closed (so :func:`clean_leftovers` never takes it); the caller publishes it with
    :func:`publish` or removes it, and closes the descriptor."""
    check_regular(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target.parent)
    return _create_temp(target)


def _publish_new(temp: Path, target: Path) -> None:
    """Give ``temp`` the name ``target`` only if that name is free, atomically (a hard link, which fails on an
    existing name); where links are not allowed, by creating ``target`` exclusively and copying into it."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise OutputError("already exists (written by another run meanwhile)", path=target,
                          hint="pass {opt:overwrite} or choose another name") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        _copy_exclusive(temp, target)
    with suppress(OSError):
        temp.unlink()


def _copy_exclusive(temp: Path, target: Path) -> None:
    """The fallback of :func:`_publish_new`: ``target`` created with ``O_EXCL`` (a second writer fails), then filled."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags, 0o666)
    except FileExistsError:
        raise OutputError("already exists (written by another run meanwhile)", path=target,
                          hint="pass {opt:overwrite} or choose another name") from None
    try:
        with open(fd, "wb") as out, open(temp, "rb") as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with suppress(OSError):
            target.unlink()
        raise


def _create_temp(target: Path) -> tuple[Path, int]:
    # Not NamedTemporaryFile: it creates files 0600, and the rename would hand
    # that mode to the result. os.open with 0666 lets the umask decide, as for
    # any normally created file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        return temp, fd


def os_reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def _write_hint(exc: OSError) -> str | None:
    if exc.errno == errno.ENOSPC:
        return "free some space or write somewhere else"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to"
    return None
