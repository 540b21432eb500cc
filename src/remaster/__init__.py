"""remaster: restore and upscale images.

>>> from remaster import Remasterer
>>> out = Remasterer(["degrade.jpeg(quality=30)", "bicubic(scale=2)"]).run(img)

Names are imported on first use (PEP 562), so that ``import remaster`` and the
plugin surface :mod:`remaster.plugin` cost nothing until a pipeline is built.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from remaster.errors import (
    ChecksumError,
    ImageTooLargeError,
    InputError,
    OutputError,
    PluginError,
    RemasterError,
    RemasterWarning,
    StageContractError,
    StageError,
    StageParamError,
    UnknownStageError,
    UnsafeWeightsError,
    UnsupportedImageError,
    UsageError,
    WeightsError,
    WeightsNotFoundError,
    WrongWeightsError,
)
from remaster.plugin import (
    MODEL_FILE_SUFFIXES,
    PLUGIN_API_VERSION,
    FrameSequence,
    Param,
    StageCall,
    StageInfo,
    StageKind,
    StageSpec,
    Tiling,
    format_stage,
    hookimpl,
    parse_pipeline,
    parse_stage,
)

if TYPE_CHECKING:
    from remaster.io.image import Image, Meta
    from remaster.pipeline.configured import DEFAULT_UPSCALER, resolve_spec
    from remaster.pipeline.devices import autocast_context
    from remaster.pipeline.options import PipelineOptions
    from remaster.pipeline.remasterer import Remasterer
    from remaster.pipeline.stage import CompileTarget, NetworkStage, PrepareContext, RunContext, Stage, SubPipeline

try:
    __version__ = version("remaster")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

#: Names that need torch, and the module each comes from; imported when first asked for.
_LAZY = {
    "Remasterer": ".pipeline.remasterer",
    "PipelineOptions": ".pipeline.options",
    "DEFAULT_UPSCALER": ".pipeline.configured",
    "Image": ".io.image",
    "Meta": ".io.image",
    "Stage": ".pipeline.stage",
    "RunContext": ".pipeline.stage",
    "PrepareContext": ".pipeline.stage",
    "SubPipeline": ".pipeline.stage",
    "NetworkStage": ".pipeline.stage",
    "CompileTarget": ".pipeline.stage",
    "resolve_spec": ".pipeline.configured",
    "autocast_context": ".pipeline.devices",
}


#: Submodules reachable as attributes (``remaster.io.load``), as they were when this package imported them eagerly.
_SUBMODULES = frozenset({
    "cli", "errors", "evaluation", "io", "metrics", "pipeline", "plugin", "runs", "server", "stages", "testing",
    "training", "weights",
})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)  # the import system sets the attribute too
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)

__all__ = [
    "Remasterer",
    "PipelineOptions",
    "DEFAULT_UPSCALER",
    "Image",
    "Meta",
    "Stage",
    "StageSpec",
    "StageInfo",
    "StageKind",
    "Param",
    "RunContext",
    "PrepareContext",
    "SubPipeline",
    "NetworkStage",
    "CompileTarget",
    "FrameSequence",
    "resolve_spec",
    "autocast_context",
    "StageCall",
    "parse_stage",
    "format_stage",
    "parse_pipeline",
    "MODEL_FILE_SUFFIXES",
    "Tiling",
    "hookimpl",
    "PLUGIN_API_VERSION",
    "RemasterError",
    "RemasterWarning",
    "UsageError",
    "InputError",
    "ImageTooLargeError",
    "UnsupportedImageError",
    "OutputError",
    "StageError",
    "UnknownStageError",
    "StageParamError",
    "StageContractError",
    "PluginError",
    "WeightsError",
    "WeightsNotFoundError",
    "ChecksumError",
    "UnsafeWeightsError",
    "WrongWeightsError",
    "__version__",
]
