"""Networks from weights files: :func:`load_network` builds one with spandrel, :func:`expect_network` checks one.

:func:`expect_network` is the content check plugins give as ``WeightsSpec.check``.
spandrel (and through it torch) is imported only when a file is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from remaster.errors import StageError, WrongWeightsError
from remaster.weights.serialize import load_state_dict

__all__ = ["load_network", "find_and_load_network", "expect_network"]


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


def find_and_load_network(find: Callable[[], Path], *, hint: str | None = None) -> tuple[Path, Any]:
    """``load_network(find())``, with spandrel imported while ``find`` runs.

    ``find`` is typically ``lambda: manager.ensure(name)``, which reads the whole weights file to check its
    sha256 (a quarter of a second for realesrgan-x4plus); hashing releases the GIL, so on a first use in a
    process the check costs nothing next to importing spandrel (over a second), and the file is still checked
    on every run.

    Returns:
        The file ``find`` gave and the network, as :func:`load_network` builds it.

    Raises:
        Whatever ``find`` raises (e.g. ``WeightsNotFoundError``), then as :func:`load_network`.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="remaster-weights") as pool:
        found = pool.submit(find)
        import spandrel  # noqa: F401  (the slow import, in parallel with the hash)

        path = found.result()
    return path, load_network(path, hint=hint)


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
