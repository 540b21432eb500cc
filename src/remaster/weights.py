"""Model weights: where they live, how they get there, and how they are read safely.

Plugins describe the weights they need with :class:`WeightsSpec` through the
``remaster_register_weights`` hook; the :class:`WeightsRegistry` on the plugin
host holds them. :class:`WeightsManager` keeps the files in a cache folder and
checks their sha256 every time one is used. It never downloads on its own:
:meth:`WeightsManager.ensure` only finds, verifies or produces a file offline,
and says which command fixes a missing one (``remaster weights fetch`` or
``remaster weights import``), so that a run never blocks on the network or
changes behaviour depending on connectivity. A file with no official sha256 is
pinned on first use, but only after the spec's ``check`` found the network it
describes in it, so that junk is never pinned.

Reading is equally conservative: :func:`load_state_dict` reads safetensors, or
pickled checkpoints through torch's ``weights_only`` unpickler only. A pickle
that needs anything more is refused with :class:`UnsafeWeightsError`; there is
no fallback to full unpickling.

This module is imported by the plugin host at start-up, so it imports neither
torch nor safetensors at module level.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import re
import secrets
import shlex
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Union

try:  # POSIX only; elsewhere concurrent downloads of one file are simply not guarded
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from .registry import SpecRegistry, import_reference
from .errors import (ChecksumError, PluginError, RemasterError, StageError, UnsafeWeightsError, UsageError,
                     WeightsError, WeightsNotFoundError, WrongWeightsError)

if TYPE_CHECKING:
    import torch

    from .plugins import PluginHost

__all__ = [
    "WeightsSpec",
    "WeightsRegistry",
    "WeightsStatus",
    "WeightsManager",
    "ProgressCallback",
    "cache_dir",
    "get_manager",
    "sha256_file",
    "load_state_dict",
    "load_network",
    "expect_network",
    "save_state_dict",
]

#: Environment variable that overrides the cache folder.
CACHE_ENV = "REMASTER_CACHE"
#: File in the weights folder holding the hashes pinned on first use.
PINS_FILE = "pins.json"
#: Subfolder of the weights folder where files that failed their check are moved.
QUARANTINE_DIR = "quarantine"

#: ``progress(bytes_done, total_bytes_or_None)``, called as a download proceeds.
ProgressCallback = Callable[[int, Union[int, None]], None]

_CHUNK = 1 << 20  # 1 MiB: big enough for throughput, small enough to keep memory flat on multi-GB files
_TIMEOUT_S = 60.0  # per socket operation, not for the whole download: slow links still finish
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# Keys under which training frameworks nest the state dict, in order of preference:
# BasicSR keeps the EMA weights (the better ones) in params_ema next to params.
_CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model")
# Markers of a damaged pickle, as opposed to one holding forbidden objects.
_CORRUPT_PICKLE = ("truncated", "invalid load key", "EOF", "ran out of input")


# --------------------------------------------------------------------------- specs and registry


@dataclass(frozen=True)
class WeightsSpec:
    """One weights file a plugin needs.

    Attributes:
        name: Unique name, lower case, digits, ``.``, ``-``, ``_`` (``realesrgan-x4plus``).
        filename: Name of the file in the cache (``RealESRGAN_x4plus.pth``); also the
            official file name, which is how ``remaster weights import`` recognises it.
        url: Official HTTP(S) download URL, if there is one.
        sha256: Expected hash (64 lower-case hex digits). ``None`` means trust on
            first use: the hash of the first file obtained is pinned in the cache's
            ``pins.json`` and every later use is checked against it.
        license: License of the weights (they often differ from the code's).
        description: One line for ``remaster weights list``.
        producer: An offline source, ``"package.module:function"`` (or a callable)
            called as ``function(target: Path) -> None`` to write the file, e.g. a
            converter from weights a Python package ships. Imported only when the
            file is needed and absent. It must be deterministic, because its output
            is checked against the same hash each time it runs.
        check: What the file must hold, ``"package.module:function"`` (or a callable)
            called as ``function(path: Path) -> None``; it raises a
            :class:`~remaster.errors.RemasterError` saying what the file holds
            instead (:func:`expect_network` does this for spandrel networks). Run
            before a hash is pinned on first use and by ``remaster weights verify``
            on pinned files; an official ``sha256`` already proves the content, so
            it is not run for those. Imported only then, so registering stays cheap.
        plugin: The plugin that registered the spec; set by the registry.
    """

    name: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    license: str = "unknown"
    description: str = ""
    producer: str | Callable[[Path], None] | None = None
    check: str | Callable[[Path], None] | None = None
    plugin: str | None = None


class WeightsRegistry(SpecRegistry[WeightsSpec]):
    """Weights specs by name; also no two specs may share a cache file name."""

    what = "weights"
    spec_type = WeightsSpec
    unknown_error = UsageError
    listing_hint = "run 'remaster weights list' to see them"

    def _check(self, spec: WeightsSpec, plugin: str) -> None:
        filename = spec.filename
        if (not isinstance(filename, str) or not filename or filename != Path(filename).name or "\\" in filename
                or filename.startswith(".") or filename == PINS_FILE or filename.endswith((".part", ".tmp"))):
            # The file name is joined to the cache folder: it must not climb out or collide with our own files.
            raise PluginError(f"weights {spec.name!r} have the file name {filename!r}", path=plugin,
                              hint="give a plain file name such as 'model.safetensors'")
        if spec.url is not None and urllib.parse.urlsplit(str(spec.url)).scheme not in ("http", "https"):
            raise PluginError(f"weights {spec.name!r} have the URL {spec.url!r}", path=plugin,
                              hint="give an http:// or https:// URL, or None")
        if spec.sha256 is not None and not _SHA256.match(str(spec.sha256).strip().lower()):
            raise PluginError(f"weights {spec.name!r} have the sha256 {spec.sha256!r}", path=plugin,
                              hint="give 64 hexadecimal digits, or None to pin on first use")
        for field in ("producer", "check"):
            value = getattr(spec, field)
            if value is not None and not (callable(value) or (isinstance(value, str) and ":" in value)):
                raise PluginError(f"weights {spec.name!r} have the {field} {value!r}", path=plugin,
                                  hint="give 'package.module:function' or a callable")

    def _attributed(self, spec: WeightsSpec, plugin: str) -> WeightsSpec:
        sha256 = None if spec.sha256 is None else str(spec.sha256).strip().lower()
        return replace(spec, plugin=plugin, sha256=sha256)

    def _check_batch(self, batch: dict[str, WeightsSpec], plugin: str) -> None:
        # Two names for one cache file would let one spec's pin or quarantine hit the other's file.
        files = {spec.filename: spec for spec in self._specs.values()}
        for spec in batch.values():
            other = files.setdefault(spec.filename, spec)
            if other is not spec:
                raise PluginError(f"weights {spec.name!r} use the file name {spec.filename!r} of weights "
                                  f"{other.name!r} (plugin {other.plugin or plugin!r})", path=plugin,
                                  hint="give each weights spec its own file name")


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """remaster's cache folder: ``$REMASTER_CACHE`` if set, else the platform's user cache folder."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("remaster"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file as 64 lower-case hex digits, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsStatus:
    """One row of ``remaster weights list``.

    Attributes:
        state: ``"cached"`` (the file is in the cache), ``"packaged"`` (absent, but a
            producer makes it offline) or ``"missing"``.
        size: Size of the cached file in bytes, if cached.
        sha256: The official hash, or ``None`` when it is pinned on first use.
        pinned: The hash pinned on first use, if any.
    """

    name: str
    plugin: str | None
    filename: str
    path: Path
    state: str
    size: int | None
    sha256: str | None
    pinned: str | None
    license: str
    url: str | None
    description: str

    @property
    def sha256_text(self) -> str:
        """The hash as ``remaster weights list`` shows it."""
        if self.sha256:
            return self.sha256
        return f"{self.pinned} (pinned on first use)" if self.pinned else "pinned on first use"


class WeightsManager:
    """The weights cache: finds, verifies, downloads, imports and produces weights files.

    Args:
        registry: Where the specs come from (``host.weights``).
        root: The cache folder; default :func:`cache_dir`. Weights live in
            ``root/weights``, files that failed a check in ``root/weights/quarantine``.
    """

    def __init__(self, registry: WeightsRegistry, root: str | os.PathLike[str] | None = None):
        self.registry = registry
        self.root = Path(root) if root is not None else cache_dir()
        self.folder = self.root / "weights"
        self.quarantine_folder = self.folder / QUARANTINE_DIR

    # ------------------------------------------------------------------ queries

    def path(self, name: str) -> Path:
        """Where the file of weights ``name`` is, or would be once obtained."""
        return self.folder / self.registry.get(name).filename

    def expected_sha256(self, name: str) -> str | None:
        """The hash the file must have: the official one, else the pinned one, else ``None`` (not pinned yet)."""
        spec = self.registry.get(name)
        return spec.sha256 or self._pins().get(name)

    def status(self) -> list[WeightsStatus]:
        """One row per registered spec for ``remaster weights list``; reads no file contents."""
        pins = self._pins()
        rows = []
        for spec in self.registry:
            target = self.folder / spec.filename
            size = target.stat().st_size if target.is_file() else None
            state = "cached" if size is not None else "packaged" if spec.producer else "missing"
            rows.append(WeightsStatus(spec.name, spec.plugin, spec.filename, target, state, size, spec.sha256,
                                      None if spec.sha256 else pins.get(spec.name), spec.license, spec.url,
                                      spec.description))
        return rows

    # ------------------------------------------------------------------ ensure

    def ensure(self, name: str) -> Path:
        """The verified local file of weights ``name``, produced offline if it can be; never downloads.

        The hash is checked on every call, so a file damaged or replaced in the
        cache is never handed to a model.

        Raises:
            UsageError: no weights of that name are registered.
            ChecksumError: the cached (or produced) file has the wrong hash; it was quarantined.
            WrongWeightsError: the file was not pinned yet and does not hold what the spec's
                ``check`` expects; it was quarantined and nothing was pinned.
            WeightsNotFoundError: the file is not cached and cannot be produced offline;
                the message says which command fixes it.
            WeightsError: the producer failed.
        """
        spec = self.registry.get(name)
        target = self.folder / spec.filename
        if target.is_file():
            self._verify_or_quarantine(spec, target)
            return target
        if spec.producer is not None:
            return self._produce(spec, target)
        raise WeightsNotFoundError(f"weights {spec.name!r} are not in the cache", path=target,
                                   hint=self._how_to_get(spec))

    def _how_to_get(self, spec: WeightsSpec) -> str:
        importing = f"remaster weights import FILE --name {spec.name}"
        if spec.url:
            return (f"run 'remaster weights fetch {spec.name}' to download {spec.filename} from {spec.url}, "
                    f"or download it by hand and run '{importing}'")
        return f"get {spec.filename} (license: {spec.license}) and run '{importing}'"

    def _refill_hint(self, spec: WeightsSpec) -> str:
        """What gets a good copy once the bad one is in quarantine; only commands that work for this spec."""
        if spec.producer is not None:
            return "it is rebuilt from the packaged weights on the next run"
        return self._how_to_get(spec)

    def _verify_or_quarantine(self, spec: WeightsSpec, target: Path, *, recheck: bool = False) -> None:
        """Check a cached file's hash (pinning it if it is the first one); ``recheck`` also re-runs a pin's check."""
        actual = sha256_file(target)
        expected = spec.sha256 or self._pins().get(spec.name)
        if expected is None or (recheck and not spec.sha256 and actual == expected):
            # Not pinned yet (a copy by hand), or a pin made before checks existed: it must hold the right network.
            problem = self._content_problem(spec, target)
            if problem is not None:
                moved = self._quarantine(target)
                if expected is not None:
                    self._unpin(spec.name)  # the pinned file never was the network: the pin protects nothing
                raise WrongWeightsError(f"is not weights {spec.name!r}: {problem}; the file was moved to {moved}",
                                        path=target, hint=self._refill_hint(spec))
            if expected is None:
                self._pin(spec.name, actual)
            return
        if actual != expected:
            moved = self._quarantine(target)
            raise ChecksumError(
                f"sha256 mismatch for weights {spec.name!r}: expected {expected}, got {actual}; "
                f"the file was moved to {moved}", path=target, hint=self._refill_hint(spec),
            )

    def _content_problem(self, spec: WeightsSpec, file: Path) -> str | None:
        """What is wrong with the content of ``file`` by the spec's ``check`` (``None``: fine, or nothing to check)."""
        if spec.check is None:
            return None
        check = spec.check
        if not callable(check):
            try:
                check = import_reference(check)
            except Exception as exc:  # ImportError, AttributeError, or anything the module raises on import
                raise WeightsError(f"cannot load the check {spec.check!r} of weights {spec.name!r}: "
                                   f"{type(exc).__name__}: {exc}", hint=self._reinstall_hint(spec)) from exc
        try:
            check(file)
        except RemasterError as exc:  # the check's verdict: what the file holds instead
            return exc.message
        except Exception as exc:  # a check that breaks is the plugin's problem, not a verdict on the file
            raise WeightsError(f"the check {spec.check!r} of weights {spec.name!r} failed: "
                               f"{type(exc).__name__}: {_first_line(str(exc))}", path=file,
                               hint=self._reinstall_hint(spec)) from exc
        return None

    def _produce(self, spec: WeightsSpec, target: Path) -> Path:
        producer = self._load_producer(spec)
        self.folder.mkdir(parents=True, exist_ok=True)
        # Same folder as the target so the final rename is atomic; the suffix is kept for writers that look at it.
        temp = self.folder / f".{secrets.token_hex(4)}.tmp-{spec.filename}"
        try:
            try:
                producer(temp)
            except Exception as exc:  # a converter failing is the plugin's problem; report it as such
                raise WeightsError(f"could not produce weights {spec.name!r}: {type(exc).__name__}: {exc}",
                                   path=target, hint=self._producer_hint(spec)) from exc
            if not temp.is_file():
                raise WeightsError(f"the producer of weights {spec.name!r} wrote no file", path=target,
                                   hint=self._producer_hint(spec))
            self._check_new_file(spec, temp, target, source=f"the producer {spec.producer!r}",
                                 hint=self._producer_hint(spec))
            os.replace(temp, target)
        finally:
            with suppress(OSError):
                temp.unlink()
        return target

    def _load_producer(self, spec: WeightsSpec) -> Callable[[Path], None]:
        producer = spec.producer
        if callable(producer):
            return producer
        assert isinstance(producer, str)
        try:
            return import_reference(producer)
        except Exception as exc:  # ImportError, AttributeError, or anything the module raises on import
            raise WeightsError(f"cannot load the producer {producer!r} of weights {spec.name!r}: "
                               f"{type(exc).__name__}: {exc}", hint=self._producer_hint(spec)) from exc

    @staticmethod
    def _reinstall_hint(spec: WeightsSpec) -> str:
        return f"reinstall the plugin {spec.plugin!r}" if spec.plugin else "reinstall the plugin that provides it"

    def _producer_hint(self, spec: WeightsSpec) -> str:
        return f"{self._reinstall_hint(spec)}, or {self._how_to_get(spec)}"

    def _check_new_file(self, spec: WeightsSpec, new: Path, target: Path, *, source: str, hint: str) -> str:
        """Check a file about to enter the cache and pin its hash if none is known; on failure quarantine + raise.

        ``hint`` says how to get a good file when ``new`` is not the official one.
        """
        actual = sha256_file(new)
        expected = spec.sha256 or self._pins().get(spec.name)
        if actual == expected:
            return actual
        # Pinned now, or differing from a pin: without an official hash, the content is all there is to go by.
        problem = None if spec.sha256 else self._content_problem(spec, new)
        if problem is not None:
            moved = self._quarantine(new, name=spec.filename)
            raise WrongWeightsError(f"{source} gave a file that is not weights {spec.name!r}: {problem}; it was "
                                    f"moved to {moved}, and nothing was pinned", path=target, hint=hint)
        if expected is None:
            self._pin(spec.name, actual)
            return actual
        moved = self._quarantine(new, name=spec.filename)
        if not spec.sha256:
            hint = (f"the file differs from the one pinned on first use; if you trust the new one, run "
                    f"'{self._replace_command(spec, moved)}'")
        raise ChecksumError(f"sha256 mismatch for weights {spec.name!r} from {source}: expected {expected}, got "
                            f"{actual}; the file was moved to {moved} and not used", path=target, hint=hint)

    @staticmethod
    def _replace_command(spec: WeightsSpec, file: Path) -> str:
        return f"remaster weights import {_shell_word(str(file))} --name {spec.name} --replace"

    # ------------------------------------------------------------------ fetch

    def fetch(self, name: str, *, url: str | None = None, progress: ProgressCallback | None = None) -> Path:
        """Download weights ``name`` into the cache, resuming an interrupted download; verified before use.

        A file already cached and valid is returned without touching the network.
        Packaged weights (a spec with a ``producer`` and no URL) are made offline,
        as :meth:`ensure` would. A failed download leaves no empty ``.part``; a
        non-empty one stays for the next call to continue.

        Args:
            url: Download from here instead of the spec's official URL (a mirror).
            progress: Called with ``(bytes_done, total_bytes or None)`` as data arrives.

        Raises:
            UsageError: unknown weights, or no URL known and none given.
            ChecksumError: the download has the wrong hash; it was quarantined, not cached.
            WrongWeightsError: the download does not hold what the spec's ``check`` expects
                (checked where no official sha256 is known); it was quarantined, nothing was pinned.
            WeightsError: the download failed (network, HTTP error, cut short).
        """
        spec = self.registry.get(name)
        target = self.folder / spec.filename
        if target.is_file():
            try:
                self._verify_or_quarantine(spec, target)
                return target
            except (ChecksumError, WrongWeightsError):
                pass  # the bad copy is in quarantine now; download a good one
        url = url or spec.url
        if not url:
            if spec.producer is not None:
                return self._produce(spec, target)
            raise UsageError(f"no download URL is known for weights {spec.name!r}",
                             hint=f"pass --url URL, or get {spec.filename} and run "
                                  f"'remaster weights import FILE --name {spec.name}'")
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"cannot download from {url!r}", hint="give an http:// or https:// URL")
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"{spec.filename}.part"
        with self._open_part(spec, part) as file:
            try:
                self._download(spec, url, file, progress)
            except BaseException:
                # An empty .part (nothing arrived, or a refused resume emptied it) can continue nothing.
                # Removed while the lock is held, so no other process is writing into it.
                if os.fstat(file.fileno()).st_size == 0:
                    with suppress(OSError):
                        part.unlink()
                raise
        # Checked before the rename: a bad download goes to quarantine and never becomes the cached file.
        # The loaders tell formats by their suffix, so the check sees the file under the cache's name.
        hint = (f"the source may be damaged or not the official {spec.filename}; get it again, or run "
                f"'remaster weights import FILE --name {spec.name}'")
        downloaded = self.folder / f".{secrets.token_hex(4)}.tmp-{spec.filename}"
        os.replace(part, downloaded)
        try:
            self._check_new_file(spec, downloaded, target, source=url, hint=hint)
            os.replace(downloaded, target)
        finally:
            with suppress(OSError):
                downloaded.unlink()
        return target

    @staticmethod
    def _open_part(spec: WeightsSpec, part: Path) -> BinaryIO:
        """The .part opened for appending, under an exclusive lock held until it is closed.

        The lock keeps two processes from interleaving writes into one .part; the
        kernel drops it if the process dies, so there are no stale locks.
        """
        for _attempt in range(3):
            file = open(part, "ab")
            try:
                if fcntl is not None:
                    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file.close()
                raise WeightsError(f"weights {spec.name!r} are being downloaded by another process", path=part,
                                   hint="wait for it to finish") from None
            # A failed download removes its empty .part under the lock: if that happened between our
            # open and our lock, what we hold is no longer the file on disk, so open again.
            try:
                if os.path.samestat(os.fstat(file.fileno()), os.stat(part)):
                    return file
            except FileNotFoundError:
                pass
            file.close()
        raise WeightsError(f"weights {spec.name!r} are being downloaded by another process", path=part,
                           hint="wait for it to finish")

    def _download(self, spec: WeightsSpec, url: str, file: BinaryIO, progress: ProgressCallback | None) -> None:
        """Stream ``url`` into ``file`` (the open .part), continuing from its current size when the server allows."""
        hint = (f"check the connection and run the same command again to resume, or download {spec.filename} "
                f"by hand and run 'remaster weights import FILE --name {spec.name}'")
        offset = file.seek(0, os.SEEK_END)
        for _attempt in range(2):  # the second attempt only follows a refused resume (416), from zero
            request = urllib.request.Request(url, headers={"User-Agent": "remaster-weights/1"})
            if offset:
                request.add_header("Range", f"bytes={offset}-")
            try:
                with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                    total = self._prepare_body(response, file, offset)
                    done = file.tell()
                    if progress:
                        progress(done, total)
                    while chunk := response.read(_CHUNK):
                        file.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    file.flush()
                    os.fsync(file.fileno())
                if total is not None and done != total:
                    raise WeightsError(f"download of weights {spec.name!r} stopped at {done} of {total} bytes",
                                       path=url, hint=hint)
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and offset:
                    # The server will not continue from here (the .part may be complete or stale): start over.
                    file.truncate(0)
                    offset = 0
                    continue
                raise WeightsError(f"download of weights {spec.name!r} failed: HTTP {exc.code} {exc.reason}",
                                   path=url, hint=hint) from None
            except urllib.error.URLError as exc:
                raise WeightsError(f"download of weights {spec.name!r} failed: {exc.reason}", path=url,
                                   hint=hint) from None
            except (socket.timeout, TimeoutError) as exc:
                raise WeightsError(f"download of weights {spec.name!r} timed out ({exc})", path=url,
                                   hint=hint) from None
            except (http.client.HTTPException, ConnectionError) as exc:  # cut off mid-body; the .part is kept
                raise WeightsError(f"download of weights {spec.name!r} was interrupted ({type(exc).__name__}: "
                                   f"{exc})", path=url, hint=hint) from None
            except OSError as exc:  # e.g. the disk filled up while writing the .part
                raise WeightsError(f"download of weights {spec.name!r} failed: {exc}", path=url,
                                   hint=hint) from None
        raise WeightsError(f"the server refused to send weights {spec.name!r}", path=url, hint=hint)

    @staticmethod
    def _prepare_body(response: Any, file: BinaryIO, offset: int) -> int | None:
        """Position ``file`` for the body about to be read; returns the full size if the server said it."""
        status = response.status
        if status == 206 and offset:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return int(match.group(2)) if match.group(2) != "*" else None
            # A partial answer starting elsewhere cannot be appended; throw the .part away (next run starts clean).
            file.truncate(0)
            raise http.client.HTTPException(f"the server answered the resume request with "
                                            f"{response.headers.get('Content-Range')!r}")
        # 200: the server ignored (or was not sent) Range and sends the whole file, so restart from zero.
        file.truncate(0)
        file.seek(0)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    # ------------------------------------------------------------------ import

    def import_file(self, path: str | os.PathLike[str], *, name: str | None = None, replace: bool = False) -> Path:
        """Copy a weights file the user already has into the cache, after checking it.

        Without ``name`` the weights are recognised by their sha256, else by the
        official file name. Where no official sha256 is known, the file must pass
        the spec's ``check`` before its hash is pinned.

        Args:
            replace: Pin this file instead of the one pinned on first use (and
                replace the cached file). Only for specs without an official sha256.

        Raises:
            UsageError: no such file, unknown name, the file cannot be recognised, or
                ``replace`` for weights with an official sha256 the file does not have.
            ChecksumError: the file is not the one the official hash (or the pin) expects;
                nothing is copied.
            WrongWeightsError: the file does not hold what the spec's ``check`` expects;
                nothing is copied or pinned.
        """
        source = Path(path)
        if not source.is_file():
            raise UsageError("no such file", path=source)
        spec = self.registry.get(name) if name is not None else None
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f".{secrets.token_hex(4)}.tmp-import"
        try:
            # Hash while copying: what is checked is exactly what lands in the cache.
            actual = _copy_hashing(source, temp)
            if spec is None:
                spec = self._recognise(source, actual)
            official = f"get the official {spec.filename}" + (f" from {spec.url}" if spec.url else "")
            if spec.sha256 and actual != spec.sha256:
                # The user's own file is left where it is; the copy is simply dropped.
                if replace:
                    raise UsageError(f"weights {spec.name!r} have an official sha256 ({spec.sha256}), which "
                                     "--replace cannot replace; it replaces only a hash pinned on first use",
                                     path=source, hint=official)
                raise ChecksumError(
                    f"is not the expected file for weights {spec.name!r}: sha256 {actual}, expected {spec.sha256}",
                    path=source, hint=official,
                )
            target = self.folder / spec.filename
            pinned = None if spec.sha256 else self._pins().get(spec.name)
            if not spec.sha256 and (pinned is None or actual != pinned or replace):
                # The loaders tell formats by their suffix: check the copy under the cache's file name.
                named = self.folder / f".{secrets.token_hex(4)}.tmp-{spec.filename}"
                os.replace(temp, named)
                temp = named
                problem = self._content_problem(spec, temp)
                if problem is not None:
                    raise WrongWeightsError(f"is not weights {spec.name!r}: {problem}", path=source,
                                            hint=f"nothing was copied or pinned; {official}")
                if pinned is not None and actual != pinned and not replace:
                    raise ChecksumError(
                        f"is not the file pinned on first use for weights {spec.name!r}: sha256 {actual}, "
                        f"expected {pinned}", path=source,
                        hint=f"if you trust this file, run '{self._replace_command(spec, source)}' to pin it instead",
                    )
                if actual != pinned:
                    self._pin(spec.name, actual)
            os.replace(temp, target)
        finally:
            with suppress(OSError):
                temp.unlink()
        return target

    def _recognise(self, source: Path, actual: str) -> WeightsSpec:
        pins = self._pins()
        specs = list(self.registry)
        for spec in specs:
            if actual in (spec.sha256, pins.get(spec.name)):
                return spec
        by_name = [s for s in specs if s.filename == source.name] or \
                  [s for s in specs if s.filename.casefold() == source.name.casefold()]
        if len(by_name) == 1:
            return by_name[0]
        known = ", ".join(s.name for s in specs) or "(none registered)"
        raise UsageError("cannot tell which weights this file is (neither its sha256 nor its name is known)",
                         path=source, hint=f"pass --name NAME; known weights: {known}")

    # ------------------------------------------------------------------ verify

    def verify(self, names: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """Check the cached files: ``(name, status)`` per weights.

        The status is ``"ok"``, ``"mismatch → quarantined"`` (wrong hash),
        ``"wrong content → quarantined"`` (a file without an official sha256 that
        fails the spec's ``check``; its pin, if any, is dropped, so that the right
        file can be imported again), ``"packaged"`` (absent, but made offline on
        the next use) or ``"missing"``. Without ``names``, every registered spec.
        A cached file that was not pinned yet is pinned now.

        Raises:
            UsageError: a name is not registered.
        """
        specs = [self.registry.get(n) for n in names] if names is not None else list(self.registry)
        results = []
        for spec in specs:
            target = self.folder / spec.filename
            if not target.is_file():
                results.append((spec.name, "packaged" if spec.producer is not None else "missing"))
                continue
            try:
                self._verify_or_quarantine(spec, target, recheck=True)
                results.append((spec.name, "ok"))
            except ChecksumError:
                results.append((spec.name, "mismatch → quarantined"))
            except WrongWeightsError:
                results.append((spec.name, "wrong content → quarantined"))
        return results

    # ------------------------------------------------------------------ pins and quarantine

    def _pins(self) -> dict[str, str]:
        pins_path = self.folder / PINS_FILE
        try:
            data = json.loads(pins_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read the pinned hashes: {exc}", path=pins_path,
                               hint="fix the file, or delete it to pin the cached files again on their next use") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise WeightsError("the pinned hashes are not a JSON object of strings", path=pins_path,
                               hint="fix the file, or delete it to pin the cached files again on their next use")
        return data

    def _pin(self, name: str, digest: str | None) -> None:
        """Pin ``digest`` for ``name``; ``None`` removes the pin."""
        from .io import write_atomic

        pins = self._pins()
        if digest is None:
            pins.pop(name, None)
        else:
            pins[name] = digest
        write_atomic(self.folder / PINS_FILE, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())

    def _unpin(self, name: str) -> None:
        self._pin(name, None)

    def _quarantine(self, file: Path, *, name: str | None = None) -> Path:
        """Move a file that failed its check out of the cache, keeping it for inspection."""
        self.quarantine_folder.mkdir(parents=True, exist_ok=True)
        destination = self.quarantine_folder / f"{name or file.name}.{secrets.token_hex(4)}"
        os.replace(file, destination)
        return destination


def _shell_word(text: str) -> str:
    """``text`` as one POSIX shell word, in double quotes when needed (hints quote whole commands in '...')."""
    if shlex.quote(text) == text:
        return text
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def get_manager(host: PluginHost | None = None) -> WeightsManager:
    """A manager over ``host``'s weights (default: the process-wide plugin host) and the current cache folder."""
    if host is None:
        from .plugins import get_host

        host = get_host()
    return WeightsManager(host.weights)


# --------------------------------------------------------------------------- reading and writing


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name → tensor) without ever running code from the file.

    ``.safetensors`` files are read with safetensors; ``.pth .pt .ckpt .bin``
    with ``torch.load(weights_only=True)`` only. The usual wrappers
    (``params_ema``, preferred, then ``params``, ``state_dict``, ``model``) are
    unwrapped.

    Raises:
        UnsafeWeightsError: the pickle holds objects other than tensors and plain
            containers; it would run code if unpickled, so it is refused.
        WeightsError: the file is missing, damaged, of an unknown type, or holds no state dict.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if not file.is_file():
        raise WeightsError("no such weights file", path=file)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(file), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...: a header or size that does not add up
            raise WeightsError(f"cannot read the safetensors file: {exc}", path=file,
                               hint="the file is damaged; get it again") from None
    elif suffix in _PICKLE_SUFFIXES:
        state = _load_pickle_safely(file)
    else:
        raise WeightsError(f"unknown weights file type {file.suffix!r}", path=file,
                           hint="give a .safetensors, .pth, .pt, .ckpt or .bin file")
    return _as_state_dict(_unwrap(state), file)


def _load_pickle_safely(file: Path) -> Any:
    import torch

    try:
        # weights_only=True is torch's restricted unpickler: tensors and plain containers, no imports.
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _weights_only_reason(str(exc))
        if any(marker in reason for marker in _CORRUPT_PICKLE):
            raise WeightsError(f"the checkpoint is damaged ({reason})", path=file,
                               hint="get the file again") from None
        junk = _not_a_pickle_opcode(reason)
        if junk is not None:
            # torch's restricted unpickler reports a byte it does not know the same way as a pickle
            # instruction it refuses; a byte that is no pickle instruction at all means no pickle at all.
            if _looks_like_safetensors(file):
                raise WeightsError(f"not a PyTorch checkpoint but a safetensors file named {file.suffix}", path=file,
                                   hint="give it a .safetensors name") from None
            raise WeightsError(f"not a PyTorch checkpoint (byte 0x{junk:02x} where a pickle instruction should be)",
                               path=file, hint="the file is damaged or of another kind; get it again") from None
        raise UnsafeWeightsError(
            f"the checkpoint holds Python objects that would run code if unpickled ({reason}); remaster refuses to "
            "load it", path=file,
            hint="get a .safetensors version of these weights, or convert the file to .safetensors in an "
                 "environment you trust",
        ) from None
    except Exception as exc:  # zip/EOF/struct errors: torch has no single type for a damaged file
        raise WeightsError(f"cannot read the checkpoint ({type(exc).__name__}: {_first_line(str(exc))})",
                           path=file, hint="the file is damaged or not a PyTorch checkpoint; get it again") from None


def _not_a_pickle_opcode(reason: str) -> int | None:
    """The byte torch's weights_only unpickler stopped at, if it is no pickle opcode at all."""
    match = re.fullmatch(r"Unsupported operand (\d+)", reason)
    if not match:
        return None
    import pickletools

    byte = int(match.group(1))
    return None if any(op.code == chr(byte) for op in pickletools.opcodes) else byte


def _looks_like_safetensors(file: Path) -> bool:
    """Whether the file starts as safetensors does: a little-endian header length, then a JSON object."""
    with open(file, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < file.stat().st_size


def _weights_only_reason(message: str) -> str:
    """The useful part of torch's long weights_only message (e.g. 'Unsupported global: GLOBAL os.system ...')."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    return _first_line(match.group(1) if match else message)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line.split(". Please use")[0].strip().rstrip(".")


def _unwrap(state: Any) -> Any:
    for _ in range(3):  # a few levels cover {"model": {"state_dict": {...}}} without looping on odd files
        if not isinstance(state, Mapping):
            return state
        for key in _CONTAINER_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and (_all_tensors(inner) or _has_container(inner)):
                state = inner
                break
        else:
            return state
    return state


def _has_container(value: Mapping[Any, Any]) -> bool:
    return any(isinstance(value.get(k), Mapping) for k in _CONTAINER_KEYS)


def _all_tensors(value: Mapping[Any, Any]) -> bool:
    import torch

    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _as_state_dict(state: Any, file: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"the file holds {type(state).__name__}, not a state dict of tensors", path=file)
    if not _all_tensors(state):
        bad = next(k for k, v in state.items() if not (isinstance(k, str) and _is_tensor(v)))
        raise WeightsError(f"the file is not a state dict of tensors (entry {bad!r} is "
                           f"{type(state[bad]).__name__})", path=file,
                           hint=f"expected tensors, possibly under one of {', '.join(_CONTAINER_KEYS)}")
    return dict(state)


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def load_network(path: str | os.PathLike[str], *, hint: str | None = None) -> Any:
    """An image-to-image network from a weights file: read by :func:`load_state_dict`, built by spandrel.

    Returns a ``spandrel.ImageModelDescriptor`` (the network in ``.model``, its
    scale, channels and size requirements); callers put it in eval or train mode.

    Raises:
        WeightsError, UnsafeWeightsError: as :func:`load_state_dict`.
        StageError: spandrel does not know the architecture (``hint`` says what is
            supported), or the network is not image-to-image.
    """
    import spandrel

    file = Path(path)
    state = load_state_dict(file)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as exc:  # spandrel raises several types for layouts it does not know
        raise StageError(f"not a network architecture remaster knows ({exc})", path=file, hint=hint) from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise StageError(f"is a {type(descriptor).__name__}, not an image-to-image network", path=file)
    return descriptor


def expect_network(path: str | os.PathLike[str], architectures: str | Iterable[str], *,
                   scale: int | None = None) -> Any:
    """Check that a weights file holds one of these spandrel architectures, at ``scale``; for ``WeightsSpec.check``.

    Args:
        architectures: spandrel architecture ids (``"ESRGAN"``, ``"Compact"``, ``"GFPGAN"``, ...).
        scale: The network's factor, if it must be one.

    Returns:
        The spandrel descriptor, as :func:`load_network` gives it.

    Raises:
        WrongWeightsError: the file holds another architecture or scale.
        WeightsError, UnsafeWeightsError, StageError: as :func:`load_network` (no network at all).
    """
    wanted = (architectures,) if isinstance(architectures, str) else tuple(architectures)
    descriptor = load_network(path)
    found = descriptor.architecture.id
    if found not in wanted or (scale is not None and descriptor.scale != scale):
        article = "an" if found[:1].upper() in "AEIOU" else "a"
        expected = " or ".join(wanted) + (f" x{scale}" if scale is not None else "")
        raise WrongWeightsError(f"holds {article} {found} x{descriptor.scale} network, expected {expected}",
                                path=path)
    return descriptor


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a state dict as safetensors, atomically (temporary file + rename).

    Raises:
        OutputError: the file could not be written.
    """
    from safetensors.torch import save

    from .io import write_atomic

    target = Path(path)
    # safetensors refuses non-contiguous and shared-memory tensors; make each its own contiguous copy.
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    write_atomic(target, _canonical_safetensors(save(tensors, metadata=dict(metadata) if metadata else None)))
    return target


def _canonical_safetensors(data: bytes) -> bytes:
    """The same file with its JSON header keys sorted.

    safetensors writes the header from a hash map, so the key order (and the
    file's sha256) changes from run to run although the tensor bytes do not.
    Sorting makes converted weights hash the same every time, which lets us
    pin their sha256.
    """
    import json
    import struct

    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the format keeps the tensor data 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data[8 + length:]
