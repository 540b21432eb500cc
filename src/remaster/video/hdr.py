"""HDR10's static metadata, carried from the source to the output: the mastering display's colour volume (its
primaries, white point and luminance range, SMPTE ST 2086) and the content light level (MaxCLL, MaxFALL).

FFmpeg's decoders attach both to each decoded frame that carries them (from the HEVC SEI messages, or from the
container: Matroska's MasteringMetadata, MP4's ``mdcv``/``clli``), and PyAV gives them as the frame's side data:
the raw ``AVMasteringDisplayMetadata`` and ``AVContentLightMetadata`` structs, read here. They reach the output
through the encoder, which writes them into the stream as SEI messages: libx265 (``x265-params``:
``master-display``, ``max-cll``, ``hdr10``, and ``hdr10-opt`` for PQ) and libx264 (``x264-params``:
``mastering-display``, ``cll``). PyAV 18.1 gives no way to set a stream's coded side data (for the container's own
boxes) nor an encoder's ``decoded_side_data`` (which FFmpeg's other encoder wrappers read), so other encoders (VP9,
AV1) are not given them: the run says the metadata was left out. The BT.2020 primaries and the PQ transfer are
tags of the stream, carried by :mod:`remaster.video.colour`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from remaster.video.colour import Colour, EncoderSettings

__all__ = ["MasteringDisplay", "LightLevel", "HDR10", "HDR10Outcome", "source_hdr10", "apply_hdr10"]

#: AVMasteringDisplayMetadata: display_primaries[3][2] (R, G, B; x, y), white_point[2], min_luminance,
#: max_luminance (each an AVRational of two ints), then has_primaries and has_luminance.
_MASTERING = struct.Struct("=20i2i")
#: AVContentLightMetadata: MaxCLL, MaxFALL (unsigned).
_LIGHT = struct.Struct("=2I")
#: AVColorTransferCharacteristic SMPTE ST 2084 (PQ), which x265's ``hdr10-opt`` is made for.
_PQ = 16

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class MasteringDisplay:
    """The mastering display's colour volume (SMPTE ST 2086).

    Attributes:
        red, green, blue, white: CIE 1931 xy chromaticities of its primaries and white point (``None`` where the
            source gives its luminance only).
        min_luminance, max_luminance: In cd/m² (``None`` where the source gives its primaries only).
    """

    red: Point | None
    green: Point | None
    blue: Point | None
    white: Point | None
    min_luminance: Fraction | None
    max_luminance: Fraction | None

    def x265(self) -> str:
        """As x265's ``master-display``: ``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``, chromaticities in 0.00002,
        luminance in 0.0001 cd/m²; empty where x265 cannot take it (it needs both parts)."""
        if None in (self.red, self.green, self.blue, self.white, self.min_luminance, self.max_luminance):
            return ""

        def point(xy: Point | None) -> str:
            assert xy is not None
            return f"({round(xy[0] * 50000)},{round(xy[1] * 50000)})"

        assert self.max_luminance is not None and self.min_luminance is not None
        return (f"G{point(self.green)}B{point(self.blue)}R{point(self.red)}WP{point(self.white)}"
                f"L({round(self.max_luminance * 10000)},{round(self.min_luminance * 10000)})")


@dataclass(frozen=True)
class LightLevel:
    """The content light level: the brightest pixel (MaxCLL) and the brightest frame average (MaxFALL), cd/m²."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True)
class HDR10:
    """A source's HDR10 static metadata (either part may be missing)."""

    display: MasteringDisplay | None = None
    light: LightLevel | None = None

    def x265_params(self) -> list[str]:
        """The ``x265-params`` entries that write it into an HEVC stream."""
        params = []
        if self.display is not None and self.display.x265():
            params.append(f"master-display={self.display.x265()}")
        if self.light is not None:
            params.append(f"max-cll={self.light.max_cll},{self.light.max_fall}")
        return params

    def x264_params(self) -> list[str]:
        """The ``x264-params`` entries that write it into an H.264 stream (x264 takes x265's notation)."""
        return [param.replace("master-display=", "mastering-display=").replace("max-cll=", "cll=")
                for param in self.x265_params()]

    def __str__(self) -> str:
        """``master-display=G(…)…L(…) max-cll=1000,400``, as x265 is given it."""
        return " ".join(self.x265_params()) or "incomplete"


@dataclass(frozen=True)
class HDR10Outcome:
    """What became of a source's HDR10 metadata.

    Attributes:
        settings: The encoder settings, with the metadata where the encoder takes it.
        colour: For the report's colour: ``{"hdr10": ...}`` (empty for a source without it).
        dropped: For the report's dropped list: the metadata, where the encoder is not given it, and why.
    """

    settings: EncoderSettings
    colour: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def source_hdr10(frame: Any) -> HDR10 | None:
    """The HDR10 metadata a decoded frame carries as side data, or ``None`` where it carries neither part."""
    display: MasteringDisplay | None = None
    light: LightLevel | None = None
    for side_data in frame.side_data:
        kind = getattr(side_data.type, "name", "")
        if kind == "MASTERING_DISPLAY_METADATA":
            display = _mastering_display(bytes(side_data))
        elif kind == "CONTENT_LIGHT_LEVEL" and len(bytes(side_data)) >= _LIGHT.size:
            max_cll, max_fall = _LIGHT.unpack_from(bytes(side_data))
            light = LightLevel(int(max_cll), int(max_fall))
    if display is None and light is None:
        return None
    return HDR10(display, light)


def _mastering_display(data: bytes) -> MasteringDisplay | None:
    if len(data) < _MASTERING.size:
        return None
    values = _MASTERING.unpack_from(data)
    rationals = [Fraction(values[i], values[i + 1]) if values[i + 1] else None for i in range(0, 20, 2)]
    has_primaries, has_luminance = values[20], values[21]
    if not has_primaries and not has_luminance:
        return None
    points: list[Point | None] = [None] * 4
    if has_primaries:
        for k in range(4):  # red, green, blue, white
            x, y = rationals[2 * k], rationals[2 * k + 1]
            points[k] = (x, y) if x is not None and y is not None else None
    low, high = (rationals[8], rationals[9]) if has_luminance else (None, None)
    return MasteringDisplay(points[0], points[1], points[2], points[3], low, high)


def apply_hdr10(frame: Any, settings: EncoderSettings, colour: Colour) -> HDR10Outcome:
    """The encoder settings that carry the HDR10 metadata of ``frame`` (the source's first) to the output:
    libx265 (with ``hdr10-opt`` for PQ) and libx264 are given it; another encoder is not, and the outcome says so."""
    hdr10 = source_hdr10(frame)
    if hdr10 is None:
        return HDR10Outcome(settings)
    if settings.codec == "libx265":
        key, params = "x265-params", hdr10.x265_params()
        if params:
            params = ["hdr10=1", *params] + (["hdr10-opt=1"] if colour.transfer == _PQ else [])
    elif settings.codec == "libx264":
        key, params = "x264-params", hdr10.x264_params()
    else:
        why = f"{settings.codec} is not given it; use libx265 (the default for 10-bit into .mkv, .mp4, .mov)"
        return HDR10Outcome(settings, {"hdr10": f"not carried: {why}"}, [f"hdr10:metadata ({why})"])
    if not params:
        why = "the source's mastering display is incomplete (x265 and x264 take it whole)"
        return HDR10Outcome(settings, {"hdr10": f"not carried: {why}"}, [f"hdr10:metadata ({why})"])
    given = settings.options.get(key, "")
    options = {**settings.options, key: ":".join(([given] if given else []) + params)}
    return HDR10Outcome(replace(settings, options=options), {"hdr10": str(hdr10)})
