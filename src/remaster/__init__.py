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

from .errors import (
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
from .plugin import PLUGIN_API_VERSION, Param, StageInfo, StageKind, StageSpec, Tiling, hookimpl
from .plugin.host import Host as _Host
from .plugin.host import set_default_host_provider as _set_default_host_provider

if TYPE_CHECKING:
    from .image import Image, Meta
    from .pipeline import DEFAULT_UPSCALER, Remasterer
    from .stage import PrepareContext, RunContext, Stage

try:
    __version__ = version("remaster")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"


def _process_host() -> _Host:
    # The composition root wires the default host (see remaster.plugin.host): metrics and weights, below the
    # host, ask the provider slot, and the import of the host happens here, on the first by-name look-up.
    from .plugins import get_host

    return get_host()


_set_default_host_provider(_process_host)

#: Names that need torch, and the module each comes from; imported when first asked for.
_LAZY = {
    "Remasterer": ".pipeline",
    "DEFAULT_UPSCALER": ".pipeline",
    "Image": ".image",
    "Meta": ".image",
    "Stage": ".stage",
    "RunContext": ".stage",
    "PrepareContext": ".stage",
}


#: Submodules reachable as attributes (``remaster.io.load``), as they were when this package imported them eagerly.
_SUBMODULES = frozenset({
    "batch", "cli", "client", "devices", "errors", "evaluation", "hookspecs", "image", "io", "metrics", "pipeline",
    "plugin", "plugins", "registry", "resample", "server", "stage", "stages", "stagestring", "testing", "tiling",
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
