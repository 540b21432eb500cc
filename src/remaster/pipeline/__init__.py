"""The pipeline: options, the stage contract, planning and running stages, the Remasterer facade.

>>> from remaster.pipeline import Remasterer
>>> Remasterer("degrade.jpeg(quality=30) | bicubic(scale=2)").run(img)

Names are imported from their modules on first use (PEP 562), so that the torch-free parts
(:mod:`remaster.pipeline.options`) can be read without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from remaster.lazy import LazyExports

if TYPE_CHECKING:
    from remaster.pipeline.configured import DEFAULT_UPSCALER, ConfiguredStage, default_upscaler, resolve_spec
    from remaster.pipeline.options import DEFAULT_MAX_OUTPUT_PIXELS, OPTION_NAMES, PipelineOptions
    from remaster.pipeline.remasterer import Remasterer, prepare_context
    from remaster.pipeline.stage import NetworkStage, PrepareContext, RunContext, Stage, SubPipeline

_EXPORTS = {
    **dict.fromkeys(("Remasterer", "prepare_context"), "remasterer"),
    **dict.fromkeys(("ConfiguredStage", "DEFAULT_UPSCALER", "default_upscaler", "resolve_spec"), "configured"),
    **dict.fromkeys(("PipelineOptions", "DEFAULT_MAX_OUTPUT_PIXELS", "OPTION_NAMES"), "options"),
    **dict.fromkeys(("Stage", "RunContext", "PrepareContext", "SubPipeline", "NetworkStage"), "stage"),
}

__all__ = [
    "Remasterer", "PipelineOptions", "OPTION_NAMES", "ConfiguredStage", "DEFAULT_UPSCALER",
    "DEFAULT_MAX_OUTPUT_PIXELS", "default_upscaler", "resolve_spec", "prepare_context", "Stage", "RunContext",
    "PrepareContext", "SubPipeline", "NetworkStage",
]

_lazy = LazyExports(globals(), _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy.get(name)


def __dir__() -> list[str]:
    return _lazy.names()
