"""The stage contract at run time: the :class:`Stage` base class and the :class:`RunContext` it gets.

What a plugin declares about a stage (:class:`StageSpec`, :class:`StageInfo`,
:class:`Param`) lives in the torch-free :mod:`remaster.plugin`; it is
re-exported here.

A :class:`Stage` works on colour pixels only: a ``(N, C, H, W)`` float tensor
in ``[0, 1]``. The pipeline takes care of everything around it — loading and
saving, channel conversion, padding to the size requirements, tiling, device
and precision, alpha — so that a stage is just the image operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .errors import StageContractError
# The declarative types live in the torch-free plugin surface; re-exported here for older imports.
from .plugin.specs import AlphaHandling, Param, StageInfo, StageKind, StageSpec, Tiling

__all__ = [
    "StageKind",
    "Tiling",
    "AlphaHandling",
    "Param",
    "StageInfo",
    "StageSpec",
    "Stage",
    "RunContext",
    "scaled_size",
    "tile_overlap_of",
]


@dataclass
class RunContext:
    """What a stage gets to know about the run it is part of.

    Attributes:
        device: Where the pixels live and the stage should compute.
        dtype: Precision the pipeline chose for this stage (the stage may
            compute in it, e.g. with autocast; pixels always arrive as float32).
        report: Per-image results a stage wants the caller to see (e.g.
            ``{"faces": 2}``); merged into ``Meta.extras``.
        progress: Callback taking the fraction done of this stage, for stages
            that loop internally (or networks that can tell how far a forward
            pass is). Set only when the stage gets the whole image in one call;
            when the image is tiled it is ``None`` and the tiler reports per tile.
        precision: What the user asked for (``"auto"``, ``"bf16"``, ...); a stage
            that runs a pipeline of its own passes it on, so each inner stage
            chooses for itself.
        bit_depth: Bits per sample of the source image (8, 16, or 32 for float).
        out_size: The ``(height, width)`` the pipeline planned for this call's
            output, so that scale factors compose exactly across stages. A stage
            that resizes to a factor should produce this size when it is set;
            ``None`` for tiles and padded inputs (then ``round(size × scale)``).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    report: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[float], None] | None = None
    precision: str = "auto"
    bit_depth: int = 8
    out_size: tuple[int, int] | None = None


class Stage:
    """Base class for stage implementations.

    Subclasses set ``spec`` (or get it from the registry at build time),
    accept their validated parameters as keyword arguments, and implement
    :meth:`run`. Heavy set-up (building a network, reading weights) goes in
    :meth:`prepare`, which the pipeline calls once before the first run.

    Attributes:
        tile_overlap: Input pixels of context a tile needs on each side, for a
            stage whose reach depends on its parameters (a blur's radius grows
            with sigma): set it in ``__init__``, where the parameters are known.
            ``None`` (the default) leaves :attr:`StageInfo.tile_overlap` in force.
    """

    tile_overlap: int | None = None

    def __init__(self, **params: Any):
        self.params: dict[str, Any] = params

    def prepare(self, device: torch.device, dtype: torch.dtype) -> None:
        """Build models and read weights; called once before the first :meth:`run`."""

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Transform ``(N, C, H, W)`` float32 pixels in [0, 1]; return the result.

        The output must be float, shaped ``(N, C', *ctx.out_size)`` when
        ``ctx.out_size`` is set, else ``(N, C', H * scale, W * scale)`` rounded
        to the nearest pixel; it is clamped to [0, 1] by the pipeline.
        The input tensor must not be modified in place.
        """
        raise NotImplementedError


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Output ``(height, width)`` of a stage with ``scale``: rounded, at least 1."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def tile_overlap_of(stage: Stage, info: StageInfo) -> int:
    """The context each tile of ``stage`` gets: the built stage's own ``tile_overlap``, else ``info.tile_overlap``.

    Raises:
        StageContractError: The stage set ``tile_overlap`` to something other
            than a whole number of pixels >= 0.
    """
    # getattr: a factory may return any object with run() and prepare(), not only a Stage subclass.
    own = getattr(stage, "tile_overlap", None)
    if own is None:
        return info.tile_overlap
    if isinstance(own, bool) or not isinstance(own, int) or own < 0:
        raise StageContractError(f"set tile_overlap to {own!r}, not a whole number of pixels >= 0",
                                 hint="this is a bug in the stage; report it to its plugin's author")
    return own
