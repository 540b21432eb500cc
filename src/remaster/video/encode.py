"""One segment of a video through the pipeline: its frames decoded with the source's own colour matrix and range,
run, and encoded with their own timestamps into the segment's file (video only: the other streams are added when
the segments are put together). Decoding and encoding run on threads of their own beside the network
(:mod:`.overlap`)."""

from __future__ import annotations

import functools
import os
import queue
import threading
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
from remaster.video.overlap import Crew

if TYPE_CHECKING:
    from remaster.io.image import Image
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["EncoderChoice", "DecodeTimes", "encode_segment", "time_base_for"]


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


#: Frames decoded ahead of the network, and results waiting for the encoder: a few each, however long the video.
DECODE_AHEAD = 2
ENCODE_BEHIND = 2
_END = object()  # after a queue's last frame


@dataclass
class _Decoded:
    """A source frame and its pixels as RGB (read with the source's colour, that of its first frame)."""

    frame: Any
    colour: Colour
    pixels: np.ndarray


def encode_segment(av: Any, frames: Iterable[Any], part: Path, container_name: str, video: Any,
                   remasterer: Remasterer, choice: EncoderChoice, *, source: Path, target_suffix: str,
                   first_frame: int, on_frame: Callable[[Any], None] | None = None) -> FinishedSegment:
    """Run and encode ``frames`` (decoded frames of ``video``, the source stream) into ``part``, published only
    when complete. ``first_frame``: the number of the first (for messages); ``on_frame`` is told each source frame
    done (once it is with the encoder), in order, on the calling thread.

    Decoding runs ahead of the network and encoding behind it, each on a thread of its own (:mod:`.overlap`):
    ``frames`` is iterated on the decoding thread, and ends there before this returns. The network runs on the
    calling thread, one frame per :meth:`~remaster.Remasterer.run_image`, in order. An exception raised on any of
    the threads (or Ctrl-C) stops them all and is raised here.
    """
    temp, fd = create_temporary(part)
    result = FinishedSegment(part.name, "", 0)
    crew = Crew()
    try:
        with open(fd, "w+b", closefd=False) as sink:
            out = av.open(sink, "w", format=container_name)
            try:
                with crew:
                    _overlapped(av, crew, frames, out, video, remasterer, choice, result, source=source,
                                suffix=target_suffix, first_frame=first_frame, on_frame=on_frame)
            finally:
                if not crew.stuck:  # an encoder that did not stop may still be using it
                    out.close()
        publish(temp, part, replace=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    result.sha256 = file_sha256(part)
    return result


def _overlapped(av: Any, crew: Crew, frames: Iterable[Any], out: Any, video: Any, remasterer: Remasterer,
                choice: EncoderChoice, result: FinishedSegment, *, source: Path, suffix: str, first_frame: int,
                on_frame: Callable[[Any], None] | None) -> None:
    """The segment's frames: decoded on one worker, run here, encoded and muxed on another."""
    decoded: queue.Queue[_Decoded | object] = queue.Queue(DECODE_AHEAD)
    to_encode: queue.Queue[tuple[Any, Image] | object] = queue.Queue(ENCODE_BEHIND)
    encoded: queue.SimpleQueue[Any] = queue.SimpleQueue()  # source frames with the encoder, to tell on_frame of

    def decode() -> None:
        colour: Colour | None = None
        for frame in frames:
            if colour is None:
                colour = source_colour(frame)
            crew.put(decoded, _Decoded(frame, colour, _rgb(av, frame, colour)))
        crew.put(decoded, _END)

    def encode(stream: Any, colour: Colour) -> None:
        checked = DecodeTimes()
        while (item := crew.get(to_encode)) is not _END:
            frame, image = item
            out.mux(checked(stream.encode(_for_encoder(av, frame, image, colour, stream))))
            encoded.put(frame)
        out.mux(checked(stream.encode(None)))

    def tell() -> None:
        while True:
            try:
                frame = encoded.get_nowait()
            except queue.Empty:
                return
            result.frames += 1
            if on_frame is not None:
                on_frame(frame)

    crew.start("remaster-decode", decode)
    encoder: threading.Thread | None = None
    number = first_frame
    while (item := crew.get(decoded)) is not _END:
        assert isinstance(item, _Decoded)
        if encoder is None:
            stream = _open_encoder(out, video, item.frame, item.colour, remasterer, choice, result, source=source,
                                   suffix=suffix)
            encoder = crew.start("remaster-encode", functools.partial(encode, stream, item.colour))
        crew.put(to_encode, (item.frame, _run(remasterer, item, result, source=source, number=number)))
        number += 1
        tell()
    if encoder is not None:
        crew.put(to_encode, _END)
        crew.wait(encoder)
    tell()


class DecodeTimes:
    """Packets of one stream given decode timestamps the muxer takes: increasing, never after their presentation
    time. A packet without one (Matroska stores none: a segment read back), with one after its presentation time
    (libx265 now and then gives the first packets of a very short encode a huge one) or with one not after the
    previous packet's (a segment's encoder counts from the segment's start) gets the one just after the previous
    packet's (its presentation time where it is the first; a first packet without one is left to the muxer). Times
    are compared in seconds, so the packets of several files may follow one another."""

    def __init__(self) -> None:
        self._last: Fraction | None = None

    def __call__(self, packets: list[Any]) -> list[Any]:
        """``packets``, their decode timestamps mended in place."""
        for packet in packets:
            base = Fraction(packet.time_base or 1)
            late = packet.dts is not None and packet.pts is not None and packet.dts > packet.pts
            stale = self._last is not None and (packet.dts is None or packet.dts * base <= self._last)
            if packet.pts is not None and (late or stale):
                packet.dts = packet.pts if self._last is None else min(packet.pts, int(self._last / base) + 1)
            if packet.dts is not None:
                self._last = packet.dts * base
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


def _rgb(av: Any, frame: Any, colour: Colour) -> np.ndarray:
    """A decoded frame's pixels as RGB (16-bit for a deep source), full range."""
    return frame.to_ndarray(format="rgb48le" if colour.deep else "rgb24", src_colorspace=colour.matrix,
                            src_color_range=colour.range, dst_color_range=2, interpolation=_accurate(av))


def _run(remasterer: Remasterer, decoded: _Decoded, result: FinishedSegment, *, source: Path,
         number: int) -> Image:
    """One frame through the pipeline (an error names the frame and its time)."""
    frame = decoded.frame
    try:
        image = remasterer.run_image(io.load(decoded.pixels), quantise=True)
    except RemasterError as exc:
        when = f"{float(frame.pts * frame.time_base):.3f} s" if frame.pts is not None else "?"
        raise type(exc)(f"frame {number} (at {when}): {exc.message}", path=source, hint=exc.hint) from exc
    if not result.stages:
        result.stages = list(image.meta.extras.get("stages", []))
    return image


def _for_encoder(av: Any, frame: Any, image: Image, colour: Colour, stream: Any) -> Any:
    """The pipeline's result for the source ``frame``, as a frame for ``stream`` with the source frame's
    timestamp."""
    rgb_format = "rgb48le" if colour.deep else "rgb24"
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
