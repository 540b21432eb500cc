"""The exceptions remaster raises, and the category of the warnings it issues.

Every failure a user can cause is a :class:`RemasterError`. Each one says what
happened, to which file or stage, and what to do about it, so that the CLI can
print ``str(error)`` as a single line and a developer can catch one base class.
Something done differently than asked, but done (alpha dropped for JPEG), is a
:class:`RemasterWarning` instead.
"""

from __future__ import annotations

import re
from os import PathLike

__all__ = [
    "OPTION_SPELLINGS",
    "spelled",
    "RemasterError",
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
    "RemasterWarning",
]


#: How each interface spells an option a hint names, as ``{opt:NAME}`` in the hint's text: (Python, command line).
#: An error speaks in the words of the interface that raised it: ``str(error)`` in Python's (``overwrite=True``),
#: :meth:`RemasterError.for_cli` in the command's (``--overwrite``).
OPTION_SPELLINGS: dict[str, tuple[str, str]] = {
    "overwrite": ("overwrite=True", "--overwrite"),
    "max_pixels": ("max_pixels=N", "--max-pixels N"),
    "max_output_pixels": ("max_output_pixels=N", "--max-output-pixels N"),
    "tile": ("a smaller tile=N", "a smaller --tile N"),
    "tile_512": ("tile=512", "--tile 512"),
    "precision_fp32": ("precision='fp32'", "--precision fp32"),
    "device_cpu": ("device='cpu'", "--device cpu"),
    "device_cuda": ("device='cuda'", "--device cuda"),
    "debug": ("logging at DEBUG level", "--debug"),
    "url": ("url=URL", "--url URL"),
    "weights_name": ("name=NAME", "--name NAME"),
    "workers": ("lower workers=, cpus_per_worker= or gpus_per_worker=",
                "lower --workers, --cpus-per-worker or --gpus-per-worker"),
    "worker_size": ("lower gpus_per_worker= / cpus_per_worker=", "lower --gpus-per-worker / --cpus-per-worker"),
    "patch": ("a smaller patch=N", "a smaller --patch N"),
    "freeze_example": ("freeze='body.0.*,body.1.*'", "--freeze 'body.0.*,body.1.*'"),
    "resume": ("resume=True", "--resume"),
    "crop_border_y": ("crop_border= / y_channel=", "--crop-border / --y-channel"),
    "compile_off": ("compile='off'", "--compile off"),
    "compile_on": ("compile='on'", "--compile on"),
}
_OPTION = re.compile(r"\{opt:(\w+)\}")


def spelled(text: str, interface: int) -> str:
    """``text`` with each ``{opt:NAME}`` as interface ``interface`` (0 Python, 1 the command line) spells it."""
    return _OPTION.sub(lambda m: OPTION_SPELLINGS.get(m.group(1), (m.group(0), m.group(0)))[interface], text)


class RemasterError(Exception):
    """Base class of every error remaster raises on purpose.

    Args:
        message: What happened, as one sentence without a trailing full stop.
        path: The file (or stage name) it happened to, if any.
        hint: What the user can do about it; an option it names is written ``{opt:NAME}``
            (:data:`OPTION_SPELLINGS`), so that each interface says it in its own words.
    """

    #: Exit status the command-line tool uses when this error ends a run.
    exit_code: int = 1

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return self._text(0)

    def for_cli(self) -> str:
        """The one line the ``remaster`` command prints: as ``str()``, options spelt as command-line flags."""
        return self._text(1)

    def _text(self, interface: int) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text} ({spelled(self.hint, interface)})"
        return text


class UsageError(RemasterError):
    """The command or call was malformed (bad option, bad pipeline string)."""

    exit_code = 2


class UnknownNameError(UsageError, KeyError):
    """A name was asked for that no plugin registered (a metric, a preset, a command); the hint has close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return UsageError.__str__(self)


class InputError(RemasterError):
    """An input image could not be read or is not usable."""


class ImageTooLargeError(InputError):
    """An image (input or planned output) exceeds the configured pixel limit."""


class UnsupportedImageError(InputError):
    """The file is not an image remaster can decode, or uses a mode it cannot handle."""


class OutputError(RemasterError):
    """A result could not be written where it was asked to go."""


class StageError(RemasterError):
    """A stage could not be found, configured, built or run."""


class UnknownStageError(StageError, KeyError):
    """No stage is registered under the requested name."""

    exit_code = 2  # a misspelt stage is a malformed command, like an unknown option

    def __str__(self) -> str:  # KeyError would repr() the message
        return RemasterError.__str__(self)


class StageParamError(StageError, UsageError):
    """A stage parameter is unknown, of the wrong type or out of range."""

    exit_code = 2


class StageContractError(StageError):
    """A stage broke its contract (wrong output shape, dtype, range, NaN)."""


class PluginError(StageError):
    """A plugin failed to load or registered something invalid."""


class WeightsError(RemasterError):
    """Model weights are missing, corrupt or unsafe."""


class WeightsNotFoundError(WeightsError):
    """The weights a stage needs are not in the cache and cannot be fetched."""


class ChecksumError(WeightsError):
    """A weights file does not have the expected sha256."""


class UnsafeWeightsError(WeightsError):
    """A weights file can only be loaded by running arbitrary pickled code."""


class WrongWeightsError(WeightsError):
    """A weights file does not hold what its spec describes (junk, a damaged file, another network)."""


class RemasterWarning(UserWarning):
    """Issued (with :func:`warnings.warn`) when a result lost something on the way, e.g. alpha in a JPEG.

    The message names the file and says how to keep what was lost; the CLI
    prints it as one ``remaster: warning:`` line. Filter on this class to
    silence or escalate remaster's warnings alone.
    """
