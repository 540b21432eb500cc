"""What a plugin declares about a weights file: :class:`WeightsSpec`, and the :class:`WeightsRegistry` holding them.

Plain data and validation only, part of the torch-free plugin surface
(:mod:`remaster.plugin`); the cache that uses them is :mod:`remaster.weights`. It also names the cache's
:data:`PINS_FILE`, because the registry refuses that as a weights file name.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from remaster.errors import PluginError, UsageError
from remaster.plugin.reference import is_reference
from remaster.plugin.registries import SpecRegistry

__all__ = ["WeightsSpec", "WeightsRegistry", "PINS_FILE"]

#: File in the weights folder holding the hashes pinned on first use.
PINS_FILE = "pins.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
        size: The file's size in bytes, if known: a download that sends more is cut off there (without it,
            :data:`remaster.weights.download.MAX_DOWNLOAD_BYTES` bounds it).
        plugin: The plugin that registered the spec; set by the registry.
    """

    name: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
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
        if spec.size is not None and (isinstance(spec.size, bool) or not isinstance(spec.size, int) or spec.size < 1):
            raise PluginError(f"weights {spec.name!r} have the size {spec.size!r}", path=plugin,
                              hint="give the file's size in bytes, or None")
        if spec.sha256 is not None and not _SHA256.match(str(spec.sha256).strip().lower()):
            raise PluginError(f"weights {spec.name!r} have the sha256 {spec.sha256!r}", path=plugin,
                              hint="give 64 hexadecimal digits, or None to pin on first use")
        for field in ("producer", "check"):
            value = getattr(spec, field)
            if value is not None and not is_reference(value):
                raise PluginError(f"weights {spec.name!r} have the {field} {value!r}", path=plugin,
                                  hint="give 'package.module:function', a remaster.plugin.Ref, or a callable")

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
