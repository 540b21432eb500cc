"""What a pipeline is asked to do besides its stages, as one frozen value: :class:`PipelineOptions`.

The same object is taken by :class:`~remaster.Remasterer`, handed to a stage's own pipelines
(:meth:`PrepareContext.pipeline`), pickled into a Ray run's spec, and built by the CLI and the server from their
flags and headers. Torch-free, so that those callers build it without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from remaster.errors import UsageError
from remaster.plugin.specs import PRECISION_NAMES

__all__ = ["PipelineOptions", "DEFAULT_MAX_OUTPUT_PIXELS", "OPTION_NAMES", "precision_request"]

#: Largest output, in pixels, a run may produce unless raised; checked before any work.
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline runs: device, precision, tiling, limits, weights and compilation.

    Attributes:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` is accepted and kept
            as its name).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``auto`` picks per device and CPU
            capability among what each stage supports.
        tile: ``"auto"`` (tile only when memory requires it), a tile size in pixels, or ``0`` to never tile.
        max_pixels: Largest input accepted, in pixels (``None``: the ``REMASTER_MAX_PIXELS`` environment
            variable or Pillow's default).
        max_output_pixels: Largest output a run may produce; checked before any stage runs.
        half_weights: Network stages that support it (the Real-ESRGAN ones) hold their weights in fp16/bf16
            when they run in it and compute without autocast, instead of float32 weights under autocast: the
            two ways of running in reduced precision, to measure against each other (docs/usage.md). No effect
            on stages that run in fp32.
        compile: ``torch.compile`` the stages that declare themselves compilable (:attr:`Stage.compilable`:
            network stages), run on tiles of one fixed size so that only one shape compiles; the first tile
            pays the compilation, reported as ``compile_seconds`` in ``meta.extras["stages"]``. If compiling
            fails the stage runs eagerly, with one warning.
        compile_backend: The ``torch.compile`` backend (``"inductor"``, the default, needs a C++ compiler on
            the CPU; ``"aot_eager"`` and ``"eager"`` compile nothing and serve for tests).

    Raises:
        UsageError: a value that cannot work (an unknown precision, a negative tile, compiling untiled).
    """

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    max_pixels: int | None = None
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    half_weights: bool = False
    compile: bool = False
    compile_backend: str | Callable[..., Any] = "inductor"

    def __post_init__(self) -> None:
        if not isinstance(self.device, str):  # a torch.device: kept by name, so the options stay torch-free
            object.__setattr__(self, "device", str(self.device))
        object.__setattr__(self, "precision", precision_request(self.precision))
        tile = self.tile
        if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 0)):
            raise UsageError(f"tile must be 'auto' or a size in pixels, not {tile!r}")
        if self.compile and tile == 0:
            raise UsageError("compiling needs tiles of one fixed size, not --tile 0",
                             hint="give a tile size (e.g. {opt:tile_512}) or leave the tile auto when compiling")
        object.__setattr__(self, "half_weights", bool(self.half_weights))
        object.__setattr__(self, "compile", bool(self.compile))

    def replace(self, **changes: Any) -> PipelineOptions:
        """These options with ``changes`` (field names) applied.

        Raises:
            UsageError: a name that is not an option.
        """
        unknown = sorted(set(changes) - set(OPTION_NAMES))
        if unknown:
            raise UsageError(f"unknown pipeline option {unknown[0]!r}", hint=f"options: {', '.join(OPTION_NAMES)}")
        return replace(self, **changes)


def precision_request(requested: str) -> str:
    """The normalised precision a user asks for (``" BF16"`` → ``"bf16"``): ``"auto"`` or a precision name.

    Raises:
        UsageError: for a name that is not auto, fp32, bf16 or fp16.
    """
    name = str(requested).strip().lower()
    if name != "auto" and name not in PRECISION_NAMES:
        raise UsageError(f"unknown precision {requested!r}", hint="use auto, fp32, bf16 or fp16")
    return name


#: The names of :class:`PipelineOptions`' fields, in order.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PipelineOptions))
