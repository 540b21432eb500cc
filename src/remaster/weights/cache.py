"""The weights cache: :class:`WeightsManager` finds, verifies, fetches, imports and produces weights files.

It checks a file's sha256 every time one is used, pins a hash on first use
(after the spec's ``check`` passed), and moves files that fail into
quarantine. :func:`get_manager` gives the manager over the plugin host's
weights; :func:`cache_dir` says where the cache is. No torch here: a spec's
``check`` or ``producer``, which reads tensors, is imported only when it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import urllib.parse
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.errors import (
    ChecksumError,
    RemasterError,
    UsageError,
    WeightsError,
    WeightsNotFoundError,
    WrongWeightsError,
)
from remaster.plugin.reference import load_reference
from remaster.plugin.weights import PINS_FILE, WeightsRegistry, WeightsSpec
from remaster.weights.download import CHUNK, ProgressCallback, download, open_part
from remaster.weights.quarantine import quarantine
from remaster.weights.serialize import first_line

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost

__all__ = ["WeightsStatus", "WeightsManager", "cache_dir", "get_manager", "sha256_file", "CACHE_ENV",
           "QUARANTINE_DIR"]

#: Environment variable that overrides the cache folder.
CACHE_ENV = "REMASTER_CACHE"
#: Subfolder of the weights folder where files that failed their check are moved.
QUARANTINE_DIR = "quarantine"


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
        while chunk := file.read(CHUNK):
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
        produced: A producer makes the file offline (from an installed package), cached yet or not.
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
    produced: bool = False

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
                                      spec.description, spec.producer is not None))
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
                moved = quarantine(target, self.quarantine_folder)
                if expected is not None:
                    self._unpin(spec.name)  # the pinned file never was the network: the pin protects nothing
                raise WrongWeightsError(f"is not weights {spec.name!r}: {problem}; the file was moved to {moved}",
                                        path=target, hint=self._refill_hint(spec))
            if expected is None:
                self._pin(spec.name, actual)
            return
        if actual != expected:
            moved = quarantine(target, self.quarantine_folder)
            raise ChecksumError(
                f"sha256 mismatch for weights {spec.name!r}: expected {expected}, got {actual}; "
                f"the file was moved to {moved}", path=target, hint=self._refill_hint(spec),
            )

    def _content_problem(self, spec: WeightsSpec, file: Path) -> str | None:
        """What is wrong with the content of ``file`` by the spec's ``check`` (``None``: fine, or nothing to check)."""
        if spec.check is None:
            return None
        try:
            check = load_reference(spec.check)
        except Exception as exc:  # ImportError, AttributeError, or anything the module raises on import
            raise WeightsError(f"cannot load the check {spec.check!r} of weights {spec.name!r}: "
                               f"{type(exc).__name__}: {exc}", hint=self._reinstall_hint(spec)) from exc
        try:
            check(file)
        except RemasterError as exc:  # the check's verdict: what the file holds instead
            return exc.message
        except Exception as exc:  # a check that breaks is the plugin's problem, not a verdict on the file
            raise WeightsError(f"the check {spec.check!r} of weights {spec.name!r} failed: "
                               f"{type(exc).__name__}: {first_line(str(exc))}", path=file,
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
        assert producer is not None
        try:
            return load_reference(producer)
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
            moved = quarantine(new, self.quarantine_folder, name=spec.filename)
            raise WrongWeightsError(f"{source} gave a file that is not weights {spec.name!r}: {problem}; it was "
                                    f"moved to {moved}, and nothing was pinned", path=target, hint=hint)
        if expected is None:
            self._pin(spec.name, actual)
            return actual
        moved = quarantine(new, self.quarantine_folder, name=spec.filename)
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
                             hint=f"pass {{opt:url}}, or get {spec.filename} and run "
                                  f"'remaster weights import FILE --name {spec.name}'")
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"cannot download from {url!r}", hint="give an http:// or https:// URL")
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"{spec.filename}.part"
        with open_part(spec, part) as file:
            try:
                download(spec, url, file, progress)
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
                         path=source, hint=f"pass {{opt:weights_name}}; known weights: {known}")

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
        hint = "fix the file, or delete it to pin the cached files again on their next use"
        try:
            data = json.loads(pins_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read the pinned hashes: {exc}", path=pins_path, hint=hint) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise WeightsError("the pinned hashes are not a JSON object of strings", path=pins_path, hint=hint)
        return data

    def _pin(self, name: str, digest: str | None) -> None:
        """Pin ``digest`` for ``name``; ``None`` removes the pin."""
        from remaster.io import write_atomic

        pins = self._pins()
        if digest is None:
            pins.pop(name, None)
        else:
            pins[name] = digest
        write_atomic(self.folder / PINS_FILE, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())

    def _unpin(self, name: str) -> None:
        self._pin(name, None)


def _shell_word(text: str) -> str:
    """``text`` as one POSIX shell word, in double quotes when needed (hints quote whole commands in '...')."""
    if shlex.quote(text) == text:
        return text
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def get_manager(host: PluginHost | None = None) -> WeightsManager:
    """A manager over ``host``'s weights (default: the process-wide plugin host) and the current cache folder."""
    if host is None:
        from remaster.plugin.host import get_host

        host = get_host()
    return WeightsManager(host.weights)
