"""One video through a pipeline: decoded with its own colour matrix and range, every frame run and encoded with
its own timestamp, the other streams copied packet for packet, the file published only when complete.

The first step of video support (docs/video.md says what is still to come: segments and resume, Ray, face
smoothing, overlapped decoding and encoding). Text subtitles a container cannot hold are converted by
:mod:`remaster.video.subtitles`, HDR10 metadata given to the encoder by :mod:`remaster.video.hdr`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from remaster import io
from remaster.errors import InputError, OutputError, RemasterError, UsageError
from remaster.io.atomic import create_temporary, publish, refuse_overwrite
from remaster.video.colour import Colour, encoder_settings, source_colour
from remaster.video.formats import container_for, import_av, open_input
from remaster.video.hdr import apply_hdr10
from remaster.video.subtitles import SubtitleConverter, target_codec

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["VideoProgress", "VideoReport", "remaster_video"]


@dataclass(frozen=True)
class VideoProgress:
    """How far a video run is, told after each frame.

    Attributes:
        fraction: The part done, by the frame's timestamp against the video's duration (0 where unknown).
        frames: Frames done so far.
        expected: Frames the video should have: the container's count, else duration times the average rate
            (``estimated``); ``None`` where neither is known.
        estimated: ``expected`` is an estimate (variable frame rate or no count in the container).
    """

    fraction: float
    frames: int
    expected: int | None = None
    estimated: bool = False

    def __str__(self) -> str:
        """``frame 120 of 240`` (``of ~240`` for an estimate; ``frame 120`` where the length is unknown)."""
        if self.expected is None:
            return f"frame {self.frames}"
        return f"frame {self.frames} of {'~' if self.estimated else ''}{max(self.expected, self.frames)}"


@dataclass
class VideoReport:
    """What a video run did.

    Attributes:
        source, target: The files.
        frames: Frames decoded, run and encoded (always all of them).
        seconds: Wall time.
        codec, pixel_format: The video encoder and its pixel format.
        colour: The colour matrix, range, primaries and transfer the frames were read and tagged with, and
            ``"hdr10"``: the HDR10 metadata carried (or why not), for a source that has it.
        copied: The other streams copied, as ``"audio:aac"``.
        converted: Text subtitle streams the output container holds only re-encoded, as
            ``"subtitle:srt->mov_text"`` (:mod:`remaster.video.subtitles`).
        dropped: Streams the output container cannot hold, each with the reason.
        stages: Per stage, the device and precision of the first frame (as ``meta.extras["stages"]``).
    """

    source: Path
    target: Path
    frames: int = 0
    seconds: float = 0.0
    codec: str = ""
    pixel_format: str = ""
    colour: dict[str, str] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)


def remaster_video(source: str | os.PathLike[str], target: str | os.PathLike[str], remasterer: Remasterer, *,
                   overwrite: bool = False, codec: str | None = None, crf: int | None = None,
                   encoder_preset: str | None = None,
                   progress: Callable[[VideoProgress], None] | None = None) -> VideoReport:
    """Run ``remasterer`` on every frame of the video ``source`` and write ``target``.

    Args:
        source: A video file (recognised by its content).
        target: The output; its suffix chooses the container (``.mkv``, ``.mp4``, ``.mov``, ``.webm``).
        remasterer: The pipeline each frame goes through.
        overwrite: Replace an existing ``target``.
        codec: The video encoder (default: ``libx264`` for 8-bit sources, ``libx265`` for deeper ones;
            ``libvpx-vp9`` into WebM).
        crf: Constant rate factor (default 18: visually lossless for these encoders).
        encoder_preset: The encoder's speed/size preset (default ``medium``).
        progress: Called after each frame with a :class:`VideoProgress`: the fraction done (by timestamp),
            frames done and the frames expected.

    Returns:
        A :class:`VideoReport`: frames, streams copied and dropped (with the reason), colour, stages.

    Raises:
        InputError: not a video, or one that cannot be decoded.
        OutputError: ``target`` exists (without ``overwrite``) or cannot be written; nothing is left there.
        UsageError: an output suffix remaster does not write videos to, or an odd output size.
    """
    av = import_av()
    source, target = Path(source), Path(target)
    container_name = container_for(target)
    if not overwrite:
        refuse_overwrite(target, source)
    started = time.perf_counter()
    report = VideoReport(source, target)
    temp, fd = create_temporary(target)
    try:
        with open(fd, "w+b", closefd=False) as sink, open_input(av, source) as container:  # type: ignore[attr-defined]
            _transcode(av, container, sink, container_name, remasterer, report, codec=codec, crf=crf,
                       preset=encoder_preset, progress=progress)
        publish(temp, target, replace=overwrite)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, RemasterError):
            raise
        if isinstance(exc, av.FFmpegError) or isinstance(exc, ValueError):
            raise InputError(f"cannot remaster the video: {exc}", path=source) from exc
        if isinstance(exc, OSError):
            raise OutputError(f"could not write the video: {exc.strerror or exc}", path=target) from exc
        raise
    finally:
        os.close(fd)
    report.seconds = time.perf_counter() - started
    return report


def _transcode(av: Any, container: Any, sink: Any, container_name: str, remasterer: Remasterer,
               report: VideoReport, *, codec: str | None, crf: int | None, preset: str | None,
               progress: Callable[[VideoProgress], None] | None) -> None:
    videos = [stream for stream in container.streams if stream.type == "video"]
    if not videos:
        raise InputError("has no video stream", path=report.source,
                         hint="give a video file (audio-only files are not remastered)")
    video = videos[0]
    others = [stream for stream in container.streams if stream is not video]
    out = av.open(sink, "w", format=container_name)
    try:
        converters: dict[Any, SubtitleConverter] = {}
        mapped = _copy_streams(out, container, others, report, converters)
        encoder: Any = None
        colour: Colour | None = None
        duration = _duration(video, container)
        expected, estimated = _expected_frames(video, duration)
        waiting: list[Any] = []  # other streams' packets before the first frame: the header is not written yet
        for packet in container.demux(video, *mapped):
            if packet.stream is not video:
                if packet.dts is not None:
                    if packet.stream in converters:  # subtitles.py: re-encoded for this container (hook)
                        packet = converters[packet.stream].convert(packet)
                    else:
                        packet.stream = mapped[packet.stream]
                    if encoder is None:
                        waiting.append(packet)
                    else:
                        out.mux(packet)
                continue
            for frame in packet.decode():
                if encoder is None:  # every stream is added before anything is muxed
                    colour = source_colour(frame)
                    encoder = _open_encoder(av, out, video, frame, colour, remasterer, report, codec=codec,
                                            crf=crf, preset=preset)
                    for held in waiting:
                        out.mux(held)
                    waiting.clear()
                assert colour is not None
                out.mux(encoder.encode(_remastered(av, frame, colour, remasterer, report, encoder)))
                report.frames += 1
                if progress is not None:
                    fraction = 0.0
                    if duration and frame.pts is not None and frame.time_base is not None:
                        fraction = min(1.0, max(0.0, float(frame.pts * frame.time_base) / duration))
                    progress(VideoProgress(fraction, report.frames, expected, estimated))
        if encoder is None:
            raise InputError("has a video stream but no frame could be decoded", path=report.source,
                             hint="the file is truncated or corrupt; re-export it")
        out.mux(encoder.encode(None))
    finally:
        out.close()


def _copy_streams(out: Any, container: Any, others: list[Any], report: VideoReport,
                  converters: dict[Any, SubtitleConverter]) -> dict[Any, Any]:
    """Streams copied packet for packet, attachments (MKV fonts) embedded, chapters and metadata carried over; text
    subtitles the output container cannot hold re-encoded into ``converters``; what it cannot hold otherwise is
    recorded as dropped, with why. Done before anything is muxed: all of it goes into the output's header."""
    suffix = report.target.suffix.lower()
    out.metadata.update(_kept(container.metadata))
    mapped = {}
    for stream in others:
        if stream.type == "attachment":
            name = f"attachment:{stream.name}"
            if suffix != ".mkv":
                report.dropped.append(f"{name} ({suffix} holds no attachments; .mkv does)")
                continue
            out.add_attachment(stream.name, stream.mimetype, bytes(stream.data))
            report.copied.append(name)
            continue
        name = f"{stream.type}:{stream.codec_context.name if stream.codec_context else '?'}"
        if stream.type not in ("audio", "subtitle"):
            report.dropped.append(f"{name} (only audio, subtitle and attachment streams are copied so far)")
            continue
        try:
            mapped[stream] = out.add_stream_from_template(stream)
        except Exception as exc:  # e.g. SRT subtitles into MP4
            codec = target_codec(stream, suffix)  # hook: subtitles.py converts what converts
            if codec is None:
                report.dropped.append(f"{name} ({suffix} cannot hold it: {exc})")
                continue
            converters[stream] = SubtitleConverter(out, stream, codec, report.source)
            mapped[stream] = converters[stream].stream
            report.converted.append(f"{name}->{codec}")
            mapped[stream].metadata.update(_kept(stream.metadata))
            continue
        mapped[stream].metadata.update(_kept(stream.metadata))
        report.copied.append(name)
    chapters = container.chapters()
    if chapters:
        out.set_chapters(chapters)
        report.copied.append(f"chapters:{len(chapters)}")
    return mapped


def _kept(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata to carry over: all but what the muxer writes anew (the encoder's name, the duration)."""
    return {key: value for key, value in metadata.items() if key.upper() not in ("ENCODER", "DURATION")}


def _duration(video: Any, container: Any) -> float | None:
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return container.duration / 1_000_000 if container.duration else None


def _expected_frames(video: Any, duration: float | None) -> tuple[int | None, bool]:
    """The container's frame count, else the duration times the average rate (an estimate), else unknown."""
    if video.frames:
        return int(video.frames), False
    rate = video.average_rate or video.guessed_rate
    if duration and rate:
        return max(1, round(duration * float(rate))), True
    return None, False


def _open_encoder(av: Any, out: Any, video: Any, frame: Any, colour: Colour, remasterer: Remasterer,
                  report: VideoReport, *, codec: str | None, crf: int | None, preset: str | None) -> Any:
    height, width, _ = remasterer.plan(frame.height, frame.width, 3)
    if width % 2 or height % 2:
        raise UsageError(f"the frames would be {width}x{height}: 4:2:0 video needs even sizes", path=report.source,
                         hint="choose a scale that gives even sizes")
    settings = encoder_settings(report.target.suffix.lower(), colour, codec=codec, crf=crf, preset=preset)
    hdr10 = apply_hdr10(frame, settings, colour)  # hook (hdr.py): HDR10 metadata given to the encoder
    settings = hdr10.settings
    stream = out.add_stream(settings.codec, options=settings.options)
    stream.width, stream.height, stream.pix_fmt = width, height, settings.pixel_format
    # Matroska and WebM count in milliseconds whatever they are given: the encoder works in them too, so that its
    # reordering delay is not rounded into a shift of every timestamp; MP4 and MOV keep the source's time base.
    time_base = Fraction(1, 1000) if report.target.suffix.lower() in (".mkv", ".webm") else video.time_base
    stream.time_base = stream.codec_context.time_base = time_base
    if video.guessed_rate:
        stream.codec_context.framerate = video.guessed_rate  # a hint to rate control; timestamps stay the frames'
    stream.metadata.update(_kept(video.metadata))  # language, title
    context = stream.codec_context
    context.colorspace, context.color_range = colour.matrix, colour.range
    context.color_primaries, context.color_trc = colour.primaries, colour.transfer
    report.codec, report.pixel_format, report.colour = settings.codec, settings.pixel_format, colour.describe()
    report.colour.update(hdr10.colour)
    report.dropped.extend(hdr10.dropped)
    return stream


def _remastered(av: Any, frame: Any, colour: Colour, remasterer: Remasterer, report: VideoReport,
                stream: Any) -> Any:
    """One decoded frame through the pipeline, as a frame for ``stream`` with the source frame's timestamp."""
    rgb_format = "rgb48le" if colour.deep else "rgb24"
    pixels = frame.to_ndarray(format=rgb_format, src_colorspace=colour.matrix, src_color_range=colour.range,
                              dst_color_range=2, interpolation=_accurate(av))
    try:
        result = remasterer.run_image(io.load(pixels), quantise=True)
    except RemasterError as exc:
        when = f"{float(frame.pts * frame.time_base):.3f} s" if frame.pts is not None else "?"
        raise type(exc)(f"frame {report.frames} (at {when}): {exc.message}", path=report.source,
                        hint=exc.hint) from exc
    if not report.stages:
        report.stages = list(result.meta.extras.get("stages", []))
    array = np.ascontiguousarray(io.to_numpy(result))
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
