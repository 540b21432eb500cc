"""One segment of a video through the pipeline: its frames decoded with the source's own colour matrix and range,
run, and encoded with their own timestamps into the segment's file (video only: the other streams are added when
the segments are put together)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from remaster import io
from remaster.errors import RemasterError, UsageError
from remaster.io.atomic import create_temporary, publish
from remaster.video.colour import Colour, encoder_settings, source_colour
from remaster.video.hdr import apply_hdr10
from remaster.video.manifest import FinishedSegment, file_sha256

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["EncoderChoice", "encode_segment", "time_base_for"]


@dataclass(frozen=True)
class EncoderChoice:
    """What the caller asked of the encoder (``None``: the default for the source's depth and the container)."""

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None


def time_base_for(suffix: str, source_time_base: Fraction) -> Fraction:
    """The output's video time base: Matroska and WebM count in milliseconds whatever they are given, so the
    encoder works in them too (its reordering delay is not rounded into a shift of every timestamp); MP4 and MOV
    keep the source's."""
    return Fraction(1, 1000) if suffix in (".mkv", ".webm") else source_time_base


def encode_segment(av: Any, frames: Iterable[Any], part: Path, container_name: str, video: Any,
                   remasterer: Remasterer, choice: EncoderChoice, *, source: Path, target_suffix: str,
                   first_frame: int, on_frame: Callable[[Any], None] | None = None) -> FinishedSegment:
    """Run and encode ``frames`` (decoded frames of ``video``, the source stream) into ``part``, published only
    when complete. ``first_frame``: the number of the first (for messages); ``on_frame`` is told each source frame
    done."""
    temp, fd = create_temporary(part)
    result = FinishedSegment(part.name, "", 0)
    checked = _DecodeTimes()
    try:
        with open(fd, "w+b", closefd=False) as sink:
            out = av.open(sink, "w", format=container_name)
            try:
                stream: Any = None
                colour: Colour | None = None
                for frame in frames:
                    if stream is None:
                        colour = source_colour(frame)
                        stream = _open_encoder(out, video, frame, colour, remasterer, choice, result,
                                               source=source, suffix=target_suffix)
                    assert colour is not None
                    out.mux(checked(stream.encode(_remastered(av, frame, colour, remasterer, stream, result,
                                                              source=source, number=first_frame + result.frames))))
                    result.frames += 1
                    if on_frame is not None:
                        on_frame(frame)
                if stream is not None:
                    out.mux(checked(stream.encode(None)))
            finally:
                out.close()
        publish(temp, part, replace=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    result.sha256 = file_sha256(part)
    return result


class _DecodeTimes:
    """Encoded packets with decode timestamps the muxer takes: libx265 now and then gives the first packets of a
    very short encode an unset one (a huge number, after the presentation time); such a packet gets the one just
    after the previous packet's, never after its own presentation time."""

    def __init__(self) -> None:
        self._last: int | None = None

    def __call__(self, packets: list[Any]) -> list[Any]:
        for packet in packets:
            if packet.pts is not None and (packet.dts is None or packet.dts > packet.pts
                                           or (self._last is not None and packet.dts <= self._last)):
                packet.dts = packet.pts if self._last is None else min(packet.pts, self._last + 1)
            if packet.dts is not None:
                self._last = packet.dts
        return packets


def _open_encoder(out: Any, video: Any, frame: Any, colour: Colour, remasterer: Remasterer, choice: EncoderChoice,
                  result: FinishedSegment, *, source: Path, suffix: str) -> Any:
    height, width, _ = remasterer.plan(frame.height, frame.width, 3)
    if width % 2 or height % 2:
        raise UsageError(f"the frames would be {width}x{height}: 4:2:0 video needs even sizes", path=source,
                         hint="choose a scale that gives even sizes")
    settings = encoder_settings(suffix, colour, codec=choice.codec, crf=choice.crf, preset=choice.preset)
    hdr10 = apply_hdr10(frame, settings, colour)  # HDR10 metadata given to the encoder (hdr.py)
    settings = hdr10.settings
    stream = out.add_stream(settings.codec, options=settings.options)
    stream.width, stream.height, stream.pix_fmt = width, height, settings.pixel_format
    stream.time_base = stream.codec_context.time_base = time_base_for(suffix, video.time_base)
    if video.guessed_rate:
        stream.codec_context.framerate = video.guessed_rate  # a hint to rate control; timestamps stay the frames'
    context = stream.codec_context
    context.colorspace, context.color_range = colour.matrix, colour.range
    context.color_primaries, context.color_trc = colour.primaries, colour.transfer
    result.codec, result.pixel_format, result.colour = settings.codec, settings.pixel_format, colour.describe()
    result.colour.update(hdr10.colour)
    result.dropped.extend(hdr10.dropped)
    return stream


def _remastered(av: Any, frame: Any, colour: Colour, remasterer: Remasterer, stream: Any,
                result: FinishedSegment, *, source: Path, number: int) -> Any:
    """One decoded frame through the pipeline, as a frame for ``stream`` with the source frame's timestamp."""
    rgb_format = "rgb48le" if colour.deep else "rgb24"
    pixels = frame.to_ndarray(format=rgb_format, src_colorspace=colour.matrix, src_color_range=colour.range,
                              dst_color_range=2, interpolation=_accurate(av))
    try:
        image = remasterer.run_image(io.load(pixels), quantise=True)
    except RemasterError as exc:
        when = f"{float(frame.pts * frame.time_base):.3f} s" if frame.pts is not None else "?"
        raise type(exc)(f"frame {number} (at {when}): {exc.message}", path=source, hint=exc.hint) from exc
    if not result.stages:
        result.stages = list(image.meta.extras.get("stages", []))
    array = np.ascontiguousarray(io.to_numpy(image))
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    out = av.VideoFrame.from_ndarray(array[..., :3], format=rgb_format)
    out = out.reformat(format=stream.pix_fmt, dst_colorspace=colour.matrix, dst_color_range=colour.range,
                       interpolation=_accurate(av))
    source_base = frame.time_base or Fraction(1, 1)
    out.time_base = stream.codec_context.time_base
    out.pts = round(frame.pts * source_base / out.time_base) if frame.pts is not None else None
    return out


def _accurate(av: Any) -> Any:
    """swscale at its most exact: rounded (not truncated) conversions and full-resolution chroma, so that a colour
    goes through YUV -> RGB -> YUV within a level (the default drifts by two in BT.601)."""
    flags = av.video.reformatter.Interpolation
    return flags.BICUBIC | flags.ACCURATE_RND | flags.FULL_CHR_H_INT | flags.FULL_CHR_H_INP
