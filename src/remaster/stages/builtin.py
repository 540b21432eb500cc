"""Registers the built-in stages through the same hook as third-party plugins.

Only specs live here: the factories are ``"module:Class"`` strings, so
:mod:`remaster.stages.interpolate` and :mod:`remaster.stages.degrade` (and
Pillow / OpenCV behind them) are imported only when a pipeline first uses one
of these stages. That is also why the choice lists below are spelled out
rather than imported from those modules; a test keeps them in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from remaster.plugin import Param, StageInfo, StageKind, StageSpec, Tiling, hookimpl

__all__ = ["INTERPOLATORS", "builtin_specs", "remaster_register_stages"]

#: Interpolator stage name -> implementation class in :mod:`remaster.stages.interpolate`.
INTERPOLATORS: dict[str, tuple[str, str]] = {
    "nearest": ("Nearest", "Resize by repeating the nearest pixel (blocky, no new values)"),
    "bilinear": ("Bilinear", "Resize with bilinear interpolation (antialiased when shrinking)"),
    "bicubic": ("Bicubic", "Resize with bicubic interpolation, a=-0.5 as MATLAB (antialiased when shrinking)"),
    "lanczos": ("Lanczos", "Resize with a Lanczos-3 filter, the sharpest classic (antialiased when shrinking)"),
}

_SEED = Param(
    "seed",
    int,
    None,
    help="Random seed; the same seed gives the same result (default: fresh randomness each run)",
)

# Every degrader takes a seed so that pair-making scripts can pass one to all;
# the deterministic ones say so instead of promising randomness.
_UNUSED_SEED = Param("seed", int, None, help="Ignored: this stage is deterministic (accepted like every degrader's)")

# Interpolators are local filters, so tiles with a few pixels of context
# reproduce the untiled result (Lanczos-3 reaches 3 input pixels when enlarging).
_INTERPOLATOR_INFO = StageInfo(
    scale_param="scale",
    in_channels=(1, 3),
    tiling=Tiling.SUPPORTED,
    tile_overlap=8,
    alpha="process",  # alpha gets the same filter as colour, so edges of cut-outs stay aligned
    dtypes=("fp32",),
    fill_transparent=True,  # garbage colour under alpha 0 must not bleed into the visible edge
)


def _interpolator(name: str, cls: str, summary: str) -> StageSpec:
    return StageSpec(
        name=name,
        kind=StageKind.UPSCALER,
        factory=f"remaster.stages.interpolate:{cls}",
        summary=summary,
        params=(
            Param("scale", float, 4.0, help="Output size / input size; any factor, below 1 shrinks",
                  min=0.01, max=64.0),
        ),
        # Nearest copies pixels, so nothing can bleed: colour under alpha 0 is left as it was.
        info=replace(_INTERPOLATOR_INFO, fill_transparent=False) if name == "nearest" else _INTERPOLATOR_INFO,
    )


def _degrader(name: str, cls: str, summary: str, params: tuple[Param, ...], info: StageInfo, *,
              random: bool = False) -> StageSpec:
    return StageSpec(
        name=name,
        kind=StageKind.DEGRADER,
        factory=f"remaster.stages.degrade:{cls}",
        summary=summary,
        params=(*params, _SEED if random else _UNUSED_SEED),
        info=info,
    )


def builtin_specs() -> list[StageSpec]:
    """The specs of every built-in stage, in listing order."""
    specs = [_interpolator(name, cls, summary) for name, (cls, summary) in INTERPOLATORS.items()]
    specs.append(_degrader(
        "degrade.downsample", "Downsample",
        "Shrink the image with a chosen filter, to make low-resolution training inputs",
        (
            Param("scale", float, 0.25, help="Output size / input size", min=0.01, max=1.0),
            Param("method", str, "bicubic", help="Resampling filter; area averages the covered pixels",
                  choices=("nearest", "bilinear", "bicubic", "area", "lanczos")),
        ),
        # A non-integer factor puts tile borders between output pixels, so
        # tiles would not line up with the untiled result exactly.
        StageInfo(scale_param="scale", tiling=Tiling.UNSUPPORTED, alpha="process", deterministic_seed=True,
                  fill_transparent=True),
    ))
    specs.append(_degrader(
        "degrade.noise", "Noise",
        "Add Gaussian or Poisson noise (Real-ESRGAN conventions)",
        (
            Param("sigma", float, 10.0, min=0.0, max=255.0,
                  help="Strength in 8-bit units: Gaussian std = sigma/255; Poisson uses BasicSR scale = sigma/10"),
            Param("kind", str, "gaussian", help="Noise model", choices=("gaussian", "poisson")),
            Param("gray", bool, False, help="Same noise in every channel (luminance noise)"),
        ),
        # Seeded noise is drawn per image; per tile it would repeat the same
        # pattern in every tile.
        StageInfo(tiling=Tiling.UNSUPPORTED, alpha="resize", deterministic_seed=True),
        random=True,
    ))
    specs.append(_degrader(
        "degrade.jpeg", "Jpeg",
        "Compress with a real JPEG encoder and decode again (8x8 blocking, ringing)",
        (Param("quality", int, 50, help="JPEG quality, 1 (worst) to 100 (best)", min=1, max=100),),
        # JPEG blocks are aligned to the image origin; tiles would shift them.
        StageInfo(tiling=Tiling.UNSUPPORTED, alpha="resize", deterministic_seed=True),
    ))
    specs.append(_degrader(
        "degrade.blur", "Blur",
        "Gaussian blur (separable, reflect padding)",
        (Param("sigma", float, 1.0, help="Standard deviation of the Gaussian in pixels", min=0.1, max=50.0),),
        # The kernel radius, ceil(3*sigma), grows to 150 px: the built Blur
        # sets its own tile_overlap to it, so tiles equal the untiled result
        # at every sigma and the stage can be tiled like any local filter.
        StageInfo(tiling=Tiling.SUPPORTED, alpha="resize", deterministic_seed=True),
    ))
    specs.append(StageSpec(
        name="degrade.realesrgan",
        kind=StageKind.DEGRADER,
        factory="remaster.stages.highorder:RealESRGANDegrade",
        summary="Real-ESRGAN's high-order degradation: 2x (blur, resize, noise, JPEG) + sinc; training inputs",
        params=(
            Param("scale", float, 0.25, help="Output size / input size, 1/k for an integer k", min=0.01, max=1.0),
            Param("config", str, None, help="JSON/TOML file overriding Real-ESRGAN's probabilities and ranges",
                  names_file=True),
            _SEED,
        ),
        # Kernels, resizes and noise are drawn per image; tiles would each get their own.
        info=StageInfo(scale_param="scale", tiling=Tiling.UNSUPPORTED, alpha="resize", deterministic_seed=True),
    ))
    return specs


@hookimpl
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    """Register the built-in stages; imports no implementation module."""
    for spec in builtin_specs():
        register(spec)
