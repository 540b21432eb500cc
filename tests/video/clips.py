"""Small clips made with PyAV for the video tests (never downloaded media)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from remaster.video.encode import DecodeTimes

#: Variable frame rate: the gaps between frames differ (milliseconds).
VFR_PTS = (0, 40, 80, 200, 233, 300, 420, 433)


#: A longer variable-rate clip (ms), for segments: 32 frames over 1.4 s.
LONG_PTS = VFR_PTS + tuple(500 + 30 * i + (i % 3) * 7 for i in range(24))


#: What ``make_clip(rich=True)`` puts in a Matroska clip besides its streams.
FONT = b"\x00\x01\x00\x00 a font, as far as a test can tell" * 8
CHAPTERS = (("One", 0, 200), ("Two", 200, 433))

#: What ``make_clip(hdr10=True)`` gives x265: a P3 D65 display of 1000 cd/m² down to 0.0001, MaxCLL, MaxFALL.
HDR10_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
HDR10_LIGHT = (1000, 400)

#: What ``make_clip(subtitles=...)`` says, when (start, end in ms), and the plain text a converted cue carries.
CUES = ((100, 300, "Hello <i>world</i>", "Hello world"), (300, 420, "Second\nline", "Second\nline"))
#: The ASS script the ``"ass"`` cues are events of (they carry override tags and ``\N`` line breaks).
_ASS_HEADER = "\n".join([
    "[Script Info]", "ScriptType: v4.00+", "PlayResX: 384", "PlayResY: 288", "", "[V4+ Styles]",
    "Format: " + ", ".join(["Name", "Fontname", "Fontsize", "PrimaryColour", "SecondaryColour", "OutlineColour",
                            "BackColour", "Bold", "Italic", "Underline", "StrikeOut", "ScaleX", "ScaleY", "Spacing",
                            "Angle", "BorderStyle", "Outline", "Shadow", "Alignment", "MarginL", "MarginR",
                            "MarginV", "Encoding"]),
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0", "", "[Events]",
    "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text", ""])


def _subtitle_file(folder: Path, kind: str) -> Path:
    """The cues as a ``.srt`` or ``.ass`` file: FFmpeg's demuxer makes of it a stream to take as a template."""
    lines = []
    for number, (start, end, line, _) in enumerate(CUES, start=1):
        if kind == "srt":
            lines.append(f"{number}\n00:00:00,{start:03d} --> 00:00:00,{end:03d}\n{line}\n\n")
        else:
            markup = line.replace("<i>", "{\\i1}").replace("</i>", "{\\i0}").replace("\n", "\\N")
            lines.append(f"Dialogue: 0,0:00:00.{start // 10:02d},0:00:00.{end // 10:02d},Default,,0,0,0,,{markup}\n")
    path = folder / f"cues.{kind}"
    path.write_text(("" if kind == "srt" else _ASS_HEADER) + "".join(lines), encoding="utf-8")
    return path


def make_clip(path: Path, *, width: int = 64, height: int = 48, pts: tuple[int, ...] = VFR_PTS, deep: bool = False,
              audio: bool = True, colour: tuple[int, int] | None = (1, 1), patches: bool = False,
              rich: bool = False, subtitles: str | None = None, hdr10: bool = False,
              gop: int | None = None, opus: bool = False) -> Path:
    """A clip: H.264 (or 10-bit H.265 with ``deep``) frames at ``pts`` ms, AAC audio, tagged with ``colour``
    (AVColorSpace, AVColorRange; ``None`` leaves it untagged). ``patches``: four flat colour patches. ``rich``
    (Matroska): a font attachment, chapters, a title and the video stream's language. ``subtitles`` (Matroska):
    ``"srt"`` or ``"ass"``, a subtitle stream with :data:`CUES`, language ``eng`` and title ``English``. ``hdr10``
    (with ``deep``): BT.2020, PQ, and :data:`HDR10_DISPLAY` and :data:`HDR10_LIGHT` in the HEVC stream. ``gop``: a
    keyframe at least every ``gop`` frames (H.265's GOPs are open: frames after a keyframe may show before it).
    ``opus``: the audio in Opus rather than AAC (Matroska)."""
    import tempfile

    import av

    with tempfile.TemporaryDirectory() as folder:
        if subtitles is None:
            return _make_clip(av, path, width, height, pts, deep, audio, colour, patches, rich, None, hdr10, gop, opus)
        with av.open(str(_subtitle_file(Path(folder), subtitles)), format=subtitles) as cues:
            return _make_clip(av, path, width, height, pts, deep, audio, colour, patches, rich, cues, hdr10, gop, opus)


def _make_clip(av, path, width, height, pts, deep, audio, colour, patches, rich, cues, hdr10, gop, opus) -> Path:  # noqa: ANN001
    rng = np.random.default_rng(len(pts))
    with av.open(str(path), "w") as out:
        if rich:
            out.add_attachment("font.ttf", "font/ttf", FONT)
            out.metadata["title"] = "A home movie"
            out.set_chapters([{"id": number, "start": start, "end": end, "time_base": Fraction(1, 1000),
                               "metadata": {"title": title}}
                              for number, (title, start, end) in enumerate(CHAPTERS, start=1)])
        params = "log-level=error" + (f":keyint={gop}:min-keyint={gop}" if gop else "")
        if hdr10:
            params += f":hdr10=1:master-display={HDR10_DISPLAY}:max-cll={HDR10_LIGHT[0]},{HDR10_LIGHT[1]}"
        video = out.add_stream("libx265" if deep else "libx264",
                               options={"crf": "10", **({"x265-params": params} if deep else {}),
                                        **({"g": str(gop)} if gop and not deep else {})})
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p10le" if deep else "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        if rich:
            video.metadata["language"] = "fra"
        if colour is not None:
            video.codec_context.colorspace, video.codec_context.color_range = colour
        if hdr10:  # BT.2020 primaries, SMPTE ST 2084 (PQ)
            video.codec_context.color_primaries, video.codec_context.color_trc = 9, 16
        sound = out.add_stream("libopus" if opus else "aac", rate=48000) if audio else None
        if cues is not None:
            text = out.add_stream_from_template(cues.streams[0])
            text.metadata.update({"language": "eng", "title": "English"})
        # libx265 now and then gives the first packets of a very short encode a garbage decode timestamp, which the
        # muxer refuses: the clip is mended as remaster mends its own encodes.
        mend = DecodeTimes()
        for index, stamp in enumerate(pts):
            if patches:
                rgb = np.zeros((height, width, 3), np.uint8)
                for k, value in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128)]):
                    rgb[:, k * width // 4:(k + 1) * width // 4] = value
            else:
                rgb = rng.integers(0, 256, (height, width, 3), np.uint8)
                rgb[:, :8] = index * 20 % 256  # a band that tells the frames apart
            if deep:
                frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint16) * 257, format="rgb48le")
            else:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            kwargs = {} if colour is None else {"dst_colorspace": colour[0], "dst_color_range": colour[1]}
            frame = frame.reformat(format=video.pix_fmt, **kwargs)
            frame.pts, frame.time_base = stamp, Fraction(1, 1000)
            out.mux(mend(video.encode(frame)))
        out.mux(mend(video.encode(None)))
        if sound is not None:
            size = 960 if opus else 1024  # samples per frame each encoder takes
            for index in range(24):
                samples = (np.sin(np.arange(size) * (index + 1) / 50) * 0.3).astype(np.float32)[None]
                block = av.AudioFrame.from_ndarray(samples, format="flt" if opus else "fltp", layout="mono")
                block.sample_rate, block.pts, block.time_base = 48000, index * size, Fraction(1, 48000)
                out.mux(sound.encode(block))
            out.mux(sound.encode(None))
        if cues is not None:
            for packet in cues.demux(cues.streams[0]):
                if packet.dts is not None:
                    packet.stream = text
                    out.mux(packet)
    return path


def frames_of(path: Path) -> list[tuple[int, np.ndarray]]:
    """Every frame's time (in ms, whatever the container's time base) and RGB pixels, read with the stream's own
    colour tags."""
    import av

    flags = av.video.reformatter.Interpolation
    exact = flags.BICUBIC | flags.ACCURATE_RND | flags.FULL_CHR_H_INT | flags.FULL_CHR_H_INP
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(round(float(frame.pts * frame.time_base) * 1000),
                 frame.to_ndarray(format="rgb24", src_colorspace=frame.colorspace or 1,
                                  src_color_range=frame.color_range or 1, dst_color_range=2, interpolation=exact))
                for frame in container.decode(stream)]


def packets_of(path: Path, kind: str) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [bytes(packet) for packet in container.demux(stream) if packet.size]
