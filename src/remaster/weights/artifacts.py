"""Compiled artifacts remaster built on this machine: where they live, how they are trusted, listed and removed.

A compiled artifact (an AOTInductor package) is native code that remaster loads into its own process, so it is
trusted like nothing else in the cache:

* remaster builds it, on this machine, for this user; nothing is ever downloaded or shared;
* it lives in ``<cache>/compiled/``, a folder of mode 0700 owned by the user (remaster makes it so, and refuses
  a folder another user owns or others may write to);
* ``manifest.json``, which only remaster writes, records each artifact with its sha256, size and what it was
  built from (stage, network identity, input shape, precision, torch version, CPU);
* :meth:`ArtifactStore.verified` hands out a file only when it is a regular file owned by the user, not writable
  by others, and its sha256 is the recorded one; a file that fails is deleted with its record (it will be built
  again), and one that is not in the manifest is never loaded.

Torch-free: the CLI lists and removes artifacts (``remaster cache``) without importing torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from remaster.errors import WeightsError
from remaster.weights.cache import sha256_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # None marks the platform without it; callers check

__all__ = ["ArtifactRecord", "ArtifactStore", "ARTIFACTS_DIR", "ANY_BUILD"]

log = logging.getLogger(__name__)

#: The cache's subfolder for compiled artifacts.
ARTIFACTS_DIR = "compiled"
#: The lock a background build holds while it runs: one at a time per cache, so that a folder of many sizes does
#: not start many compilers at once (the others are asked for again later).
ANY_BUILD = "background-builder"
_MANIFEST = "manifest.json"
_LOCK = ".manifest.lock"


@dataclass(frozen=True)
class ArtifactRecord:
    """One compiled artifact, as ``manifest.json`` records it and ``remaster cache list`` shows it.

    Attributes:
        key: What it was built for, hashed (stage, network identity, shape, precision, format, torch, CPU).
        file: Its file name in the artifacts folder.
        sha256: The file's sha256 when remaster wrote it.
        size: Its size in bytes.
        stage: The stage it runs (``realesrgan-x4plus``).
        shape: The input it takes: ``[N, C, H, W]``.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        format: ``inductor`` (an AOTInductor package: native code) or ``export`` (a ``torch.export`` program).
        torch: The torch version that built it.
        cpu: The CPU it was built on (its kind and a digest of its feature flags).
        build_seconds: How long building it took.
        created: When it was recorded (seconds since the epoch).
    """

    key: str
    file: str
    sha256: str
    size: int
    stage: str
    shape: list[int]
    precision: str
    format: str
    torch: str
    cpu: str
    build_seconds: float
    created: float


class ArtifactStore:
    """The artifacts folder of one cache (``<cache>/compiled``).

    Args:
        root: The folder; made (mode 0700) on first write.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    # -- reading -------------------------------------------------------------------------------------------------

    def records(self) -> list[ArtifactRecord]:
        """Every recorded artifact, oldest first (an unreadable manifest reads as empty)."""
        return sorted(self._read().values(), key=lambda record: record.created)

    def verified(self, key: str) -> Path | None:
        """The file recorded for ``key`` once it passes every check, else ``None``.

        A file that fails a check is deleted with its record, and the failure logged: it is built again.
        """
        record = self._read().get(key)
        if record is None:
            return None
        path = self.root / record.file
        problem = self.problem_with(path, sha256=record.sha256, size=record.size)
        if problem is None:
            return path
        log.warning("compiled artifact %s %s; it was removed and will be built again", path, problem)
        self.remove([key])
        return None

    def problem_with(self, path: Path, *, sha256: str, size: int) -> str | None:
        """Why ``path`` may not be loaded as a file remaster wrote into this private folder with ``sha256`` and
        ``size`` (the folder's own checks first), or ``None``."""
        return self._check_folder() or _check_file(path, sha256=sha256, size=size)

    def path_for(self, record_file: str) -> Path:
        """Where an artifact named ``record_file`` lives."""
        return self.root / record_file

    # -- writing -------------------------------------------------------------------------------------------------

    def ensure_folder(self) -> Path:
        """The folder, made with mode 0700 where missing.

        Raises:
            WeightsError: the folder is another user's, or others may write to it.
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        problem = self._check_folder()
        if problem is not None:
            raise WeightsError(f"the compiled-artifacts folder {problem}", path=self.root,
                               hint="remove it (remaster makes it again, private to you) or run with "
                                    "{opt:compile_off}")
        return self.root

    def record(self, record: ArtifactRecord) -> None:
        """Add ``record`` (its file already in the folder) to the manifest, replacing an older one for its key."""
        with self._locked():
            entries = self._read()
            old = entries.get(record.key)
            entries[record.key] = record
            self._write(entries)
        if old is not None and old.file != record.file:
            (self.root / old.file).unlink(missing_ok=True)

    def remove(self, keys: list[str] | None = None) -> list[ArtifactRecord]:
        """Delete the artifacts of ``keys`` (``None``: all, and any file the manifest does not name); returns the
        records removed."""
        if not self.root.is_dir():
            return []
        with self._locked():
            entries = self._read()
            chosen = [entries[key] for key in (list(entries) if keys is None else keys) if key in entries]
            for record in chosen:
                (self.root / record.file).unlink(missing_ok=True)
                del entries[record.key]
            self._write(entries)
            if keys is None:  # unrecorded leftovers (a build killed mid-way) go too
                for path in self.root.iterdir():
                    if path.is_file() and path.name not in (_MANIFEST, _LOCK) and not path.name.endswith(".lock"):
                        path.unlink(missing_ok=True)
        return chosen

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[bool]:
        """Holds the build lock of ``key`` while the ``with`` block runs: yields ``False`` (and holds nothing) when
        another process is building it."""
        fd = self.try_lock(key)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)

    def try_lock(self, key: str) -> int | None:
        """The build lock of ``key`` (:data:`ANY_BUILD`: the one background builder's slot), taken: a file descriptor
        that holds it until closed, in this process or a child it is passed to. ``None``: another holds it."""
        self.ensure_folder()
        fd = os.open(self.root / f"{key[:32]}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
        return fd

    def is_building(self, key: str) -> bool:
        """Another process holds the build lock of ``key`` now."""
        lock = self.root / f"{key[:32]}.lock"
        if fcntl is None or not lock.is_file():
            return False
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- internals -----------------------------------------------------------------------------------------------

    def _check_folder(self) -> str | None:
        info, problem = _owned(self.root, stat.S_ISDIR, "a folder", missing="does not exist")
        if info is None:
            return problem
        if info.st_mode & 0o077:
            os.chmod(self.root, 0o700)  # ours, but open to others (an older umask): made private, then trusted
            if self.root.lstat().st_mode & 0o077:
                return "is open to other users"
        return None

    def _read(self) -> dict[str, ArtifactRecord]:
        try:
            raw = json.loads((self.root / _MANIFEST).read_text(encoding="utf-8"))
            return {key: ArtifactRecord(**value) for key, value in raw.get("artifacts", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _write(self, entries: dict[str, ArtifactRecord]) -> None:
        from remaster.io import write_atomic  # the io package imports torch: only when writing

        body = {"version": 1, "artifacts": {key: asdict(record) for key, record in entries.items()}}
        write_atomic(self.root / _MANIFEST, json.dumps(body, indent=1).encode())
        os.chmod(self.root / _MANIFEST, 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure_folder()
        fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise WeightsError("the compiled-artifacts manifest stayed locked for 30 s",
                                               path=self.root / _MANIFEST,
                                               hint="another remaster holds it; try again") from None
                        time.sleep(0.05)
            yield
        finally:
            os.close(fd)


def _owned(path: Path, is_kind: Callable[[int], bool], kind: str, *,
           missing: str) -> tuple[os.stat_result | None, str | None]:
    """``path``'s status when it exists, is of ``kind`` (not a link) and belongs to this user; else why not."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None, missing
    if not is_kind(info.st_mode):
        return None, f"is not {kind}"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return None, "belongs to another user"
    return info, None


def _check_file(path: Path, *, sha256: str, size: int) -> str | None:
    """Why ``path`` may not be loaded as the file with ``sha256`` and ``size``, or ``None``."""
    info, problem = _owned(path, stat.S_ISREG, "a regular file", missing="is missing")
    if info is None:
        return problem
    if info.st_mode & 0o022:
        return "is writable by other users"
    if info.st_size != size or sha256_file(path) != sha256:
        return "does not match its recorded sha256"
    return None


def record_fields() -> tuple[str, ...]:
    """The fields of an :class:`ArtifactRecord`, in order (for listings)."""
    return tuple(ArtifactRecord.__dataclass_fields__)


def describe(record: ArtifactRecord) -> dict[str, Any]:
    """``record`` as a JSON-ready dict."""
    return asdict(record)
