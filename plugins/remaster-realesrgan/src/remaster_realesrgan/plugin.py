"""Registers the Real-ESRGAN stages, their weights and the editors' upscale presets (cheap: data only)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from remaster import MODEL_FILE_SUFFIXES
from remaster.plugin import (
    Param,
    Preset,
    Ref,
    StageInfo,
    StageKind,
    StageSpec,
    Tiling,
    VulkanDevice,
    WeightsSpec,
    hookimpl,
)

from .catalogue import MODELS, VULKAN_ARCHITECTURES, WEIGHTS

# RRDBNet's receptive field is far wider than any practical overlap; 24 input pixels
# of context keep tiled output within a few 8-bit levels of the whole-image result
# (measured in tests/test_stage.py), with no visible seam after feathering.
TILE_OVERLAP = 24
_DTYPES = ("fp32", "bf16", "fp16")
#: The stage class, imported (with torch and spandrel) only when a pipeline first uses a stage.
_STAGE = "remaster_realesrgan.stage:SpandrelUpscaler"


def upscaler_info(scale: int, multiple_of: int = 1, *, vulkan: bool = True) -> StageInfo:
    """Capabilities shared by every Real-ESRGAN-family network stage; all of them run on Vulkan (a packaged ncnn
    model, or the weights converted for ncnn on first use)."""
    return StageInfo(scale=scale, scale_param="scale", resample=True, in_channels=(3,), multiple_of=multiple_of,
                     tiling=Tiling.SUPPORTED, tile_overlap=TILE_OVERLAP, alpha="process", dtypes=_DTYPES,
                     vulkan=vulkan)


def upscaler_params(scale: int) -> tuple[Param, ...]:
    return (
        Param("scale", float, float(scale), min=0.01, max=16.0,
              help=f"output factor; the network runs at x{scale} and Lanczos resamples the rest"),
        Param("alpha", str, "process", choices=("process", "resize"),
              help="process: alpha goes through the network too (as Real-ESRGAN); resize: Lanczos, faster"),
    )


@hookimpl
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    for model in MODELS:
        register(StageSpec(
            name=model.stage,
            kind=StageKind.UPSCALER,
            factory=Ref(_STAGE, weights=model.weights, native_scale=model.scale, ncnn=model.ncnn),
            summary=model.summary,
            params=upscaler_params(model.scale),
            info=upscaler_info(model.scale, model.multiple_of),
        ))


#: spandrel tiling modes -> ours; INTERNAL models tile themselves, so the pipeline must not.
_TILING = {"SUPPORTED": Tiling.SUPPORTED, "DISCOURAGED": Tiling.DISCOURAGED, "INTERNAL": Tiling.UNSUPPORTED}


@hookimpl
def remaster_stage_from_file(path: Path) -> StageSpec | None:
    """Run any single-image upscaler/restorer spandrel recognises (ESRGAN, Real-ESRGAN, compact, ...); the ESRGAN
    and Compact ones on Vulkan too (converted for ncnn on first use).

    Only the file's layout is read here (:mod:`.detect`); the network is built when a pipeline prepares the stage.
    """
    if not path.name.lower().endswith(MODEL_FILE_SUFFIXES):
        return None
    from .detect import detect_network

    detected = detect_network(path)
    if detected is None:
        return None
    descriptor, built = detected
    if descriptor.purpose == "FaceSR" or descriptor.input_channels != descriptor.output_channels:
        return None  # face restorers and colourisers belong to other plugins
    size = descriptor.size_requirements
    dtypes = ("fp32",) + (("bf16",) if descriptor.supports_bfloat16 else ()) + (
        ("fp16",) if descriptor.supports_half else ())
    info = StageInfo(
        scale=descriptor.scale, scale_param="scale", resample=True, in_channels=(descriptor.input_channels,),
        min_size=max(1, size.minimum), multiple_of=max(1, size.multiple_of),
        tiling=_TILING.get(descriptor.tiling.name, Tiling.SUPPORTED), tile_overlap=TILE_OVERLAP,
        alpha="process", dtypes=dtypes,
        vulkan=descriptor.architecture.id in VULKAN_ARCHITECTURES and "ESRGAN+" not in descriptor.tags,
    )
    name = re.sub(r"[^a-z0-9_.\-]+", "-", path.stem.lower()).strip("-.") or "model"
    # A descriptor built on the meta device has no weights: the stage builds the network from the file.
    source = {"descriptor": descriptor} if built else {"path": path}
    return StageSpec(
        name=name, kind=StageKind.UPSCALER if descriptor.scale > 1 else StageKind.FILTER,
        factory=Ref(_STAGE, native_scale=descriptor.scale, **source),
        summary=f"{descriptor.architecture.name} x{descriptor.scale} from {path}",
        params=upscaler_params(descriptor.scale), info=info,
    )


@hookimpl
def remaster_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    for spec in WEIGHTS:
        register(spec)


@hookimpl
def remaster_register_presets(register: Callable[[Preset], None]) -> None:
    # The ids are the GIMP procedure's preset names since the first release: scripts pass them.
    register(Preset(name="upscale-x4", label="upscale x4", pipeline="realesrgan-x4plus", order=10,
                    description="Real-ESRGAN x4plus: four times the size, for photos"))
    register(Preset(name="upscale-x2", label="upscale x2", pipeline="realesrgan-x4plus(scale=2)", order=20,
                    description="Real-ESRGAN x4plus resampled to twice the size"))


@hookimpl
def remaster_vulkan_devices() -> tuple[VulkanDevice, ...]:
    """The Vulkan devices ncnn sees; ncnn (and the Vulkan loader) are looked for only now."""
    from .vulkan import vulkan_devices

    return vulkan_devices()
