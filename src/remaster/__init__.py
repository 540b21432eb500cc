"""remaster: restore and upscale images.

>>> from remaster import Remasterer
>>> out = Remasterer(["degrade.jpeg(quality=30)", "bicubic(scale=2)"]).run(img)
"""

from importlib.metadata import PackageNotFoundError, version

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
from .hookspecs import PLUGIN_API_VERSION, hookimpl
from .image import Image, Meta
from .pipeline import DEFAULT_UPSCALER, Remasterer
from .stage import Param, RunContext, Stage, StageInfo, StageKind, StageSpec, Tiling

try:
    __version__ = version("remaster")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

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
