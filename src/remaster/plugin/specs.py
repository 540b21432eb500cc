"""What a plugin declares about a stage: cheap, importable descriptions (no torch).

A plugin registers a :class:`StageSpec` — the stage's name, kind, parameters and
capabilities (:class:`StageInfo`, in the spirit of spandrel's model descriptors),
plus a ``factory`` given as ``"package.module:Class"`` or a :class:`Ref`. Nothing
heavy happens at registration: the factory module is imported only when a
pipeline first needs the stage, and weights are read only in ``Stage.prepare``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from remaster.errors import StageError, StageParamError
from remaster.plugin.reference import Ref, Reference, load_reference

__all__ = ["StageKind", "Tiling", "AlphaHandling", "Param", "StageInfo", "StageSpec", "Precision", "PRECISION_NAMES",
           "precision_name"]

#: The one precision vocabulary: what ``--precision`` takes (besides ``auto``), ``StageInfo.dtypes`` lists and every
#: report says. Mapped to torch in one place, :func:`remaster.pipeline.devices.torch_dtype`.
Precision = Literal["fp32", "bf16", "fp16"]

#: The precision names, fastest-to-exact order aside: fp32, bf16, fp16.
PRECISION_NAMES: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
_TORCH_NAMES: dict[str, Precision] = {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}


def precision_name(dtype: Any) -> Precision:
    """``"bf16"`` for ``"bf16"`` or ``torch.bfloat16`` (read from its name, without importing torch).

    Raises:
        ValueError: for anything that is not one of :data:`PRECISION_NAMES` or their torch dtypes.
    """
    for name in PRECISION_NAMES:
        if dtype == name:
            return name
    known = _TORCH_NAMES.get(str(dtype))
    if known is None or isinstance(dtype, str):
        raise ValueError(f"unknown precision {dtype!r}; expected one of {', '.join(PRECISION_NAMES)}")
    return known


class StageKind(str, enum.Enum):
    """What a stage is for; used for listing and for sensible defaults."""

    UPSCALER = "upscaler"
    DEGRADER = "degrader"
    FACE = "face"
    FILTER = "filter"


class Tiling(str, enum.Enum):
    """Whether the pipeline may cut the image into tiles for this stage.

    ``SUPPORTED``: tiles with overlap give the same result (networks with a
    bounded receptive field, local filters). ``DISCOURAGED``: tiling works but
    changes the result noticeably; only done when the user asks for a tile
    size. ``UNSUPPORTED``: the stage needs the whole image (global operations,
    JPEG blocks aligned to the image origin, face detection).
    """

    SUPPORTED = "supported"
    DISCOURAGED = "discouraged"
    UNSUPPORTED = "unsupported"


#: How alpha goes through a stage. ``"resize"``: the pipeline resizes alpha to
#: the output size with Lanczos (and leaves it alone when the size does not
#: change). ``"process"``: the stage is run on alpha too, as a gray image
#: replicated to the stage's channels (what Real-ESRGAN does). A stage that
#: lets users choose declares a parameter named ``alpha`` with these values.
AlphaHandling = Literal["resize", "process"]

_PARAM_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Param:
    """One parameter of a stage (or option of a metric), with its default and constraints.

    Attributes:
        name: Keyword used in stage strings and in the factory call.
        type: One of ``int``, ``float``, ``str``, ``bool``; metric options may also be ``tuple``
            (a list or tuple literal) or ``object`` (any literal, passed as written).
        default: Value when not given; ``None`` for optional parameters.
        help: One line shown by ``remaster stages``.
        choices: Allowed values, if the parameter is an enumeration.
        min: Smallest allowed value (inclusive), for numbers.
        max: Largest allowed value (inclusive), for numbers.
        required: The parameter has no default and must be given.
        names_file: A string value may name a file the stage opens (a checkpoint, a settings file); a value
            that is a registered stage name is not a file. ``remaster serve`` refuses such values from a client
            unless the file is inside a folder it was told to allow (``--allow-files``): a client's string
            never becomes a path the server opens.
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    required: bool = False
    names_file: bool = False

    def coerce(self, value: Any, stage: str) -> Any:
        """Convert ``value`` to this parameter's type and check its range."""
        if value is None and not self.required:
            return None
        try:
            if self.type is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                        raise ValueError(value)
                    value = lowered in {"true", "1", "yes"}
                elif not isinstance(value, (bool, int)):
                    raise ValueError(value)
                converted: Any = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                if isinstance(value, bool):
                    raise ValueError(value)
                converted = int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                converted = float(value)
            else:  # a value already of the type is kept: ``object`` takes any literal, ``tuple`` keeps tuples
                converted = value if isinstance(value, self.type) else self.type(value)
        except (TypeError, ValueError):
            raise StageParamError(
                f"parameter {self.name}={value!r} is not a valid {self.type.__name__}",
                path=stage,
                hint=self.help or None,
            ) from None
        if self.choices is not None and converted not in self.choices:
            raise StageParamError(
                f"parameter {self.name}={converted!r} is not one of {', '.join(map(str, self.choices))}",
                path=stage,
            )
        if self.min is not None and converted < self.min:
            raise StageParamError(f"parameter {self.name}={converted!r} is below the minimum {self.min}", path=stage)
        if self.max is not None and converted > self.max:
            raise StageParamError(f"parameter {self.name}={converted!r} is above the maximum {self.max}", path=stage)
        return converted

    def describe(self) -> str:
        """``name: type = default`` plus constraints, for listings."""
        text = f"{self.name}: {self.type.__name__}"
        text += " (required)" if self.required else f" = {self.default!r}"
        if self.choices:
            text += f" in {{{', '.join(map(str, self.choices))}}}"
        elif self.min is not None or self.max is not None:
            text += f" in [{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"
        return text


@dataclass(frozen=True)
class StageInfo:
    """What a stage can do; the pipeline plans around it (like spandrel's ModelDescriptor).

    Attributes:
        scale: Output size divided by input size, for a fixed-scale stage.
        scale_param: Name of the parameter that sets the scale instead (e.g.
            ``"scale"`` for ``bicubic(scale=2)``); overrides ``scale``.
        in_channels: Colour channels the stage accepts: ``(1, 3)`` for both.
            Grayscale input is expanded to RGB when only 3 is accepted.
        out_channels: Channels produced, or ``None`` for "same as input".
        min_size: Smallest height/width the stage accepts; smaller inputs are
            padded by reflection and the output cropped.
        multiple_of: Height and width must be multiples of this; padded likewise.
        tiling: Whether the pipeline may tile the image for this stage.
        tile_overlap: Input pixels of context a tile needs on each side to
            match the untiled result (about the receptive field radius). A
            stage whose reach depends on its parameters sets
            :attr:`Stage.tile_overlap` on the built instance instead, which wins.
        alpha: How alpha passes through (see :data:`AlphaHandling`).
        dtypes: Compute precisions the stage supports, named ``"fp32"``,
            ``"bf16"``, ``"fp16"``; the pipeline only picks from these. Torch
            dtypes (``torch.bfloat16``) are accepted too and stored as names.
        devices: Device types the stage supports (``"cpu"``, ``"cuda"``).
        vulkan: The stage computes on a Vulkan device when the pipeline runs on one (``device="vulkan[:N]"``):
            it is then prepared and run with :attr:`PrepareContext.vulkan` / :attr:`RunContext.vulkan` set to
            that device, while its pixels stay host tensors (``ctx.device`` is the CPU) that it hands to its
            runtime itself. In a Vulkan pipeline a stage without it runs on the CPU, with a one-line note.
        deterministic_seed: The stage takes a ``seed`` parameter and gives the
            same output for the same seed.
        resample: The stage always runs at ``scale`` (a network's native
            factor); when ``scale_param`` asks for another factor, the pipeline
            resamples the result with Lanczos. Lets ``realesrgan-x4plus(scale=2)``
            work without every network stage resampling on its own.
        fill_transparent: Before the stage runs at a scale other than 1, the
            pipeline replaces the colour under fully transparent pixels (often
            garbage) with that of the nearest visible ones, so resampling cannot
            spread it into visible edges. Right for filters; off by default so
            that networks match their reference implementations exactly.
    """

    scale: float = 1.0
    scale_param: str | None = None
    in_channels: tuple[int, ...] = (1, 3)
    out_channels: int | None = None
    min_size: int = 1
    multiple_of: int = 1
    tiling: Tiling = Tiling.SUPPORTED
    tile_overlap: int = 16
    alpha: AlphaHandling = "resize"
    dtypes: tuple[str, ...] = ("fp32",)
    devices: tuple[str, ...] = ("cpu", "cuda")
    vulkan: bool = False
    deterministic_seed: bool = False
    resample: bool = False
    fill_transparent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtypes", tuple(precision_name(dtype) for dtype in self.dtypes))

    def scale_for(self, params: dict[str, Any]) -> float:
        """The scale factor given resolved parameters."""
        if self.scale_param is not None and params.get(self.scale_param) is not None:
            return float(params[self.scale_param])
        return float(self.scale)

    def channels_out(self, channels_in: int) -> int:
        """Channels the stage produces from ``channels_in`` input channels."""
        if self.out_channels is not None:
            return self.out_channels
        return channels_in if channels_in in self.in_channels else max(self.in_channels)


@dataclass(frozen=True)
class StageSpec:
    """Cheap description of a stage, registered by a plugin.

    Attributes:
        name: Unique name used in stage strings (``"bicubic"``,
            ``"degrade.jpeg"``); lower case, dots and dashes allowed.
        kind: What the stage is for.
        factory: ``"package.module:Class"`` or a :class:`~remaster.plugin.Ref` (imported
            on first use, a ``Ref`` with its bound keyword arguments), or a callable
            returning a :class:`~remaster.Stage` from keyword parameters.
        summary: One line for listings.
        params: Accepted parameters; anything else is rejected.
        info: Capabilities the pipeline plans around.
        plugin: Name of the plugin that registered the spec (set by the registry).
    """

    name: str
    kind: StageKind
    factory: Reference
    summary: str = ""
    params: tuple[Param, ...] = ()
    info: StageInfo = field(default_factory=StageInfo)
    plugin: str | None = None

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``given`` against the schema and fill in defaults.

        Raises:
            StageParamError: for unknown keys (listing the valid ones), missing
                required values, wrong types or out-of-range values.
        """
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            valid = ", ".join(known) or "none"
            raise StageParamError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                path=self.name,
                hint=f"valid parameters: {valid}",
            )
        resolved: dict[str, Any] = {}
        for param in self.params:
            if param.name in given:
                resolved[param.name] = param.coerce(given[param.name], self.name)
            elif param.required:
                raise StageParamError(f"parameter {param.name} is required", path=self.name, hint=param.describe())
            else:
                resolved[param.name] = param.default
        return resolved

    def as_json(self) -> dict[str, Any]:
        """What ``remaster stages --json`` and the server's ``/v1/stages`` say about this stage."""
        return {
            "name": self.name, "kind": self.kind.value, "plugin": self.plugin, "summary": self.summary,
            "scale": self.info.scale_param or self.info.scale, "tiling": self.info.tiling.value,
            "vulkan": self.info.vulkan,
            "params": [{"name": p.name, "type": p.type.__name__, "default": p.default, "help": p.help,
                        "choices": list(p.choices) if p.choices else None, "min": p.min, "max": p.max,
                        "names_file": p.names_file}
                       for p in self.params],
        }

    def load_factory(self) -> Callable[..., Any]:
        """Import and return the factory (the module is imported only now)."""
        if callable(self.factory) and not isinstance(self.factory, Ref):
            return self.factory
        try:
            return load_reference(self.factory)
        except Exception as exc:  # a plugin's import can fail in any way
            raise StageError(
                f"cannot import the stage implementation {str(self.factory)!r}: {exc}",
                path=self.name,
                hint=f"reinstall the plugin {self.plugin!r} that provides it" if self.plugin else None,
            ) from exc
