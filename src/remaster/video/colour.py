"""A video's colour: the matrix, range, primaries and transfer its frames are read with and the output is tagged
with, and the encoder settings that keep its depth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remaster.errors import UsageError

__all__ = ["Colour", "EncoderSettings", "source_colour", "encoder_settings"]

# FFmpeg's enumerations (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic).
_MATRICES = {1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
_RANGES = {1: "limited", 2: "full"}
_BT709, _SMPTE170M, _LIMITED = 1, 6, 1


@dataclass(frozen=True)
class Colour:
    """How a video's samples map to colours.

    Attributes:
        matrix: YUV matrix (AVColorSpace: 1 BT.709, 5/6 BT.601, 9 BT.2020).
        range: 1 limited (TV), 2 full (PC).
        primaries, transfer: As the source says (2: unspecified), copied to the output's tags.
        deep: More than 8 bits per sample: read and written through 16-bit RGB.
        guessed: What was not tagged in the source and was taken from the frame size (BT.709 for HD, else BT.601)
            or the convention (limited range).
    """

    matrix: int
    range: int
    primaries: int
    transfer: int
    deep: bool
    guessed: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, str]:
        text = {"matrix": _MATRICES.get(self.matrix, str(self.matrix)),
                "range": _RANGES.get(self.range, str(self.range)), "depth": "16-bit path" if self.deep else "8-bit"}
        if self.guessed:
            text["guessed"] = ", ".join(self.guessed)
        return text


def source_colour(frame: Any) -> Colour:
    """The colour of the first decoded frame; what the source leaves untagged is taken as players take it."""
    guessed = []
    matrix = int(frame.colorspace)
    if matrix not in _MATRICES:
        matrix = _BT709 if frame.height >= 720 else _SMPTE170M
        guessed.append("matrix")
    colour_range = int(frame.color_range)
    if colour_range not in _RANGES:
        colour_range = _LIMITED
        guessed.append("range")
    deep = max(component.bits for component in frame.format.components) > 8
    return Colour(matrix, colour_range, int(frame.color_primaries), int(frame.color_trc), deep, tuple(guessed))


#: AV1 encoders: refused until the segments of AV1 can be put together (see :func:`encoder_settings`).
_AV1_ENCODERS = frozenset({"libsvtav1", "libaom-av1", "librav1e", "av1"})


@dataclass(frozen=True)
class EncoderSettings:
    codec: str
    pixel_format: str
    options: dict[str, str]


def encoder_settings(suffix: str, colour: Colour, *, codec: str | None = None, crf: int | None = None,
                     preset: str | None = None) -> EncoderSettings:
    """The encoder: H.264 for 8-bit sources, H.265 (10-bit) for deeper ones, VP9 in WebM; CRF 18, preset medium."""
    if codec is None:
        codec = "libvpx-vp9" if suffix == ".webm" else "libx265" if colour.deep else "libx264"
    if codec in _AV1_ENCODERS:
        raise UsageError(f"{codec}: AV1 output cannot be put together from segments yet (PyAV 18.1 opens AV1 with "
                         "libdav1d, and cannot copy a stream from it)",
                         hint="choose libx265 (10-bit) or libx264, or write .webm (VP9)")
    if codec == "libvpx-vp9" and colour.deep:
        raise UsageError("the source is deeper than 8 bits, and the VP9 encoder of PyAV's wheels writes 8-bit only",
                         hint="write .mkv or .mp4 (10-bit H.265) instead of .webm")
    pixel_format = "yuv420p10le" if colour.deep else "yuv420p"
    options = {"crf": str(18 if crf is None else crf)}
    if codec in ("libx264", "libx265"):
        options["preset"] = preset or "medium"
    if codec == "libx265":
        options["x265-params"] = "log-level=error"
    if codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality
    return EncoderSettings(codec, pixel_format, options)
