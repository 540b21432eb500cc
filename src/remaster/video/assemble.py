"""The output file made from the finished segments: their video packets end to end, and the source's other
streams copied packet for packet (attachments, chapters and metadata carried over), interleaved by time."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.video.encode import DecodeTimes, time_base_for
from remaster.video.subtitles import SubtitleConverter, target_codec

if TYPE_CHECKING:
    from remaster.video.report import VideoReport

__all__ = ["assemble"]


def assemble(av: Any, container: Any, video: Any, parts: list[Path], sink: Any, container_name: str,
             report: VideoReport) -> None:
    """Write the output into ``sink``: the segments' video from the files ``parts`` (in order), the other streams
    of ``container`` (the open source; ``video`` is its video stream) copied. What the output container cannot
    hold is recorded in ``report.dropped``, with why."""
    with ExitStack() as opened:  # every file closed, even when closing the output fails (a full disk)
        inputs = [opened.enter_context(av.open(str(part))) for part in parts]
        out = av.open(sink, "w", format=container_name)
        opened.callback(out.close)
        template = inputs[0].streams.video[0]
        stream = out.add_stream_from_template(template)
        stream.time_base = time_base_for(report.target.suffix.lower(), video.time_base)
        stream.metadata.update(_kept(video.metadata))  # language, title
        others = [other for other in container.streams if other is not video]
        converters: dict[Any, SubtitleConverter] = {}
        mapped = _copy_streams(out, container, others, report, converters)
        timed = heapq.merge(_segment_packets(inputs, stream), _other_packets(container, mapped, converters),
                            key=lambda item: item[0])
        for _, packet in timed:
            out.mux(packet)


def _segment_packets(inputs: list[Any], stream: Any) -> Iterator[tuple[float, Any]]:
    """The segments' video packets in order, for ``stream``, with decode timestamps that increase across the
    segments (:class:`~remaster.video.encode.DecodeTimes`)."""
    mended = DecodeTimes()
    for opened in inputs:
        source = opened.streams.video[0]
        for packet in opened.demux(source):
            if packet.size == 0:
                continue
            mended([packet])
            packet.stream = stream
            yield float(packet.dts * packet.time_base) if packet.dts is not None else 0.0, packet


def _other_packets(container: Any, mapped: dict[Any, Any],
                   converters: dict[Any, SubtitleConverter]) -> Iterator[tuple[float, Any]]:
    """The source's other streams' packets, for their output streams; text subtitles the output holds only
    re-encoded go through their converter."""
    if not mapped:
        return
    for packet in container.demux(*mapped):
        if packet.dts is None:
            continue  # the demuxer's flush packets
        stamp = float(packet.dts * packet.time_base)
        if packet.stream in converters:
            for converted in converters[packet.stream].convert(packet):
                yield stamp, converted
            continue
        packet.stream = mapped[packet.stream]
        yield stamp, packet


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
            codec = target_codec(stream, suffix)  # text subtitles convert (subtitles.py)
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
