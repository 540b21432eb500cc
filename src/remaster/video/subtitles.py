"""Text subtitles a container cannot hold as they are, re-encoded into the kind it holds: SRT, ASS/SSA and WebVTT
into MP4 and MOV as ``mov_text`` (3GPP timed text), and into WebM as WebVTT.

Each cue is decoded by FFmpeg's own subtitle decoder (into ASS events) and encoded by its ``mov_text`` or
``webvtt`` encoder, as ``ffmpeg -c:s mov_text`` does: the text, its line breaks and the styling the target can
express (italic, bold, underline) come along, the rest of the markup (ASS override tags, positions) is left out.
Every cue keeps its start and duration. Bitmap subtitles (DVD, PGS) would need character recognition: they are
not converted, and the run says they were left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remaster.errors import InputError

__all__ = ["TARGETS", "target_codec", "SubtitleConverter"]

#: The text subtitle codec each output suffix holds, where it cannot hold the source's as it is.
TARGETS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}


def target_codec(stream: Any, suffix: str) -> str | None:
    """The codec ``stream`` is converted to for an output ending in ``suffix``: ``None`` where it is no text
    subtitle stream (bitmap subtitles, audio), or the container holds no text subtitles at all."""
    if stream.type != "subtitle" or stream.codec_context is None:
        return None
    codec = stream.codec_context.codec
    if not getattr(codec, "text_sub", False):
        return None
    return TARGETS.get(suffix.lower())


class SubtitleConverter:
    """One text subtitle stream re-encoded, cue by cue, into a new stream of ``out``.

    Args:
        out: The output container (nothing muxed yet: the stream is added to its header).
        source: The input subtitle stream.
        codec: The encoder (:func:`target_codec`).
        path: The source file, for errors.

    Attributes:
        stream: The output stream; its packets come from :meth:`convert`.
        codec: The encoder's name, as the report says it (``subtitle:srt->mov_text``).
    """

    def __init__(self, out: Any, source: Any, codec: str, path: Path) -> None:
        self.source, self.codec, self.path = source, codec, path
        decoder = source.codec_context
        decoder.open(strict=False)  # the decoder makes the ASS header (styles) the encoder starts from
        self.stream = out.add_stream(codec)
        context = self.stream.codec_context
        if decoder.subtitle_header:
            context.subtitle_header = decoder.subtitle_header
        self.stream.time_base = context.time_base = source.time_base

    def convert(self, packet: Any) -> list[Any]:
        """The output packets of one input packet (none where it holds no cue), with its start and duration.

        Raises:
            InputError: a cue FFmpeg cannot decode or encode, naming the stream and the time.
        """
        try:
            cues = self.source.codec_context.decode2(packet)
            if cues is None or not len(cues):
                return []
            encoded = self.stream.codec_context.encode_subtitle(cues)
        except Exception as exc:  # av.FFmpegError; PyAV is imported by the caller only
            when = f"{float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else "?"
            raise InputError(f"subtitle stream #{self.source.index}: cannot convert the cue at {when} to "
                             f"{self.codec}: {exc}", path=self.path,
                             hint="write a .mkv, which holds the subtitles as they are") from exc
        encoded.time_base = packet.time_base
        encoded.pts = encoded.dts = packet.pts
        encoded.duration = packet.duration or _cue_duration(cues, packet.time_base)
        encoded.stream = self.stream
        return [encoded]


def _cue_duration(cues: Any, time_base: Any) -> int:
    """A cue's display time (milliseconds in FFmpeg's subtitle struct) in ``time_base``, where the packet has none."""
    milliseconds = max(0, int(cues.end_display_time) - int(cues.start_display_time))
    return round(milliseconds / 1000 / time_base) if time_base else 0
