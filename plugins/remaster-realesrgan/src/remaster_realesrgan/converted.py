"""Model files converted for ncnn on first use, kept in the weights cache with where they came from.

``--device vulkan`` runs a network through ncnn, which reads ``.param``/``.bin`` files. The packaged models ship
them; any other ESRGAN-family network (a ``--model FILE``, the x2plus and general-x4v3 weights) is written by
:mod:`remaster_realesrgan.ncnn_export` the first time it runs on Vulkan and kept in ``<weights>/ncnn/``:

* ``<source sha256>-v<converter>.param`` and ``.bin``: the graph and its float32 weights;
* ``<source sha256>-v<converter>.json``: the provenance: the source file (path, sha256, size), the architecture,
  scale and input multiple, the converter and spandrel versions, each written file's sha256, and when.

A conversion is used again only while its files have the sha256 the record names (otherwise it is made again,
with a warning), so an edited or truncated file never reaches ncnn. The key is the source's sha256 and the
converter's version: a changed file or a new converter makes a new conversion; ``remaster weights path`` shows
the folder, and deleting it is always safe. A network handed over already built (no file to name) is converted
under the sha256 of what was written.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remaster.errors import StageError
from remaster.io import write_atomic
from remaster.weights import sha256_file

from .ncnn_export import CONVERTER_VERSION, NcnnGraph, NotConvertible, export

__all__ = ["ConvertedModel", "converted_model", "FOLDER"]

log = logging.getLogger("remaster_realesrgan.converted")

#: The conversions' folder inside the weights folder.
FOLDER = "ncnn"


@dataclass(frozen=True)
class ConvertedModel:
    """A converted network's files and what running it needs.

    Attributes:
        param: The ``.param`` file.
        weights: The ``.bin`` file.
        scale: The network's factor.
        pad_multiple: Input sides must be a multiple of this (reflection-padded, the output cropped).
        provenance: The record (:mod:`remaster_realesrgan.converted`).
        converted: Whether it was converted now (``False``: found in the cache).
    """

    param: Path
    weights: Path
    scale: int
    pad_multiple: int
    provenance: dict[str, Any]
    converted: bool


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cached(record_path: Path) -> ConvertedModel | None:
    """The conversion ``record_path`` describes, if its files are the ones recorded; else ``None`` (logged)."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        param, weights = record_path.with_suffix(".param"), record_path.with_suffix(".bin")
        for path, key in ((param, "param_sha256"), (weights, "bin_sha256")):
            if sha256_file(path) != record[key]:
                log.warning("the ncnn conversion %s is not the file recorded in %s; it is made again", path,
                            record_path.name)
                return None
        return ConvertedModel(param, weights, int(record["scale"]), int(record["pad_multiple"]), record, False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the ncnn conversion record %s cannot be used (%s); it is made again", record_path, exc)
        return None


def converted_model(folder: Path, *, source: Path | None, descriptor: Callable[[], Any],
                    stage: str) -> ConvertedModel:
    """The ncnn files of the network in ``source`` (converted now unless a verified conversion is cached).

    Args:
        folder: Where conversions live (``<weights folder>/ncnn``).
        source: The model file; ``None`` for a network handed over already built.
        descriptor: The spandrel descriptor of that network, called only to convert.
        stage: The stage's name, for messages.

    Raises:
        StageError: the network has a part ncnn cannot be given (not available on Vulkan), or the files cannot be
            written.
    """
    digest = sha256_file(source) if source is not None else None
    if digest is not None:
        found = _cached(folder / f"{digest}-v{CONVERTER_VERSION}.json")
        if found is not None:
            return found
    started = time.perf_counter()
    built = descriptor()
    try:
        graph = export(built.model, architecture=built.architecture.id, scale=int(built.scale))
    except NotConvertible as exc:
        raise StageError(f"is not available on Vulkan: ncnn cannot be given {exc}", path=source or stage,
                         hint="use {opt:device_cpu}") from None
    if digest is None:
        digest = _sha256(graph.param.encode() + graph.weights)
        found = _cached(folder / f"{digest}-v{CONVERTER_VERSION}.json")
        if found is not None:
            return found
    return _write(folder, digest, graph, source, seconds=time.perf_counter() - started)


def _write(folder: Path, digest: str, graph: NcnnGraph, source: Path | None, *, seconds: float) -> ConvertedModel:
    stem = folder / f"{digest}-v{CONVERTER_VERSION}"
    param, weights = stem.with_suffix(".param"), stem.with_suffix(".bin")
    record: dict[str, Any] = {
        "source": None if source is None else str(source.resolve()),
        "source_sha256": digest if source is not None else None,
        "source_size": None if source is None else source.stat().st_size,
        "architecture": graph.architecture,
        "scale": graph.scale,
        "pad_multiple": graph.pad_multiple,
        "converter": f"remaster-realesrgan {_version('remaster-realesrgan')} ncnn_export v{CONVERTER_VERSION}",
        "spandrel": _version("spandrel"),
        "param_sha256": _sha256(graph.param.encode()),
        "bin_sha256": _sha256(graph.weights),
        "convert_seconds": round(seconds, 3),  # reading the file with spandrel included
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(param, graph.param.encode())
    write_atomic(weights, graph.weights)
    write_atomic(stem.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())  # last: it vouches
    log.info("converted %s for ncnn in %.1f s: %s", source or "the network", seconds, param.parent)
    return ConvertedModel(param, weights, graph.scale, graph.pad_multiple, record, True)


def _version(distribution: str) -> str:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(distribution)
    return "unknown"
