"""Small clips made with PyAV for the video tests (never downloaded media)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: Variable frame rate: the gaps between frames differ (milliseconds).
VFR_PTS = (0, 40, 80, 200, 233, 300, 420, 433)


#: A longer variable-rate clip (ms), for segments: 32 frames over 1.4 s.
LONG_PTS = VFR_PTS + tuple(500 + 30 * i + (i % 3) * 7 for i in range(24))


#: What ``make_clip(rich=True)`` puts in a Matroska clip besides its streams.
FONT = b"\x00\x01\x00\x00 a font, as far as a test can tell" * 8
CHAPTERS = (("One", 0, 200), ("Two", 200, 433))


def make_clip(path: Path, *, width: int = 64, height: int = 48, pts: tuple[int, ...] = VFR_PTS, deep: bool = False,
              audio: bool = True, colour: tuple[int, int] | None = (1, 1), patches: bool = False,
              rich: bool = False, gop: int | None = None) -> Path:
    """A clip: H.264 (or 10-bit H.265 with ``deep``) frames at ``pts`` ms, AAC audio, tagged with ``colour``
    (AVColorSpace, AVColorRange; ``None`` leaves it untagged). ``patches``: four flat colour patches. ``rich``
    (Matroska): a font attachment, chapters, a title and the video stream's language. ``gop``: a keyframe at least
    every ``gop`` frames (H.265's GOPs are open: frames after a keyframe may show before it)."""
    import av

    rng = np.random.default_rng(len(pts))
    with av.open(str(path), "w") as out:
        if rich:
            out.add_attachment("font.ttf", "font/ttf", FONT)
            out.metadata["title"] = "A home movie"
            out.set_chapters([{"id": number, "start": start, "end": end, "time_base": Fraction(1, 1000),
                               "metadata": {"title": title}}
                              for number, (title, start, end) in enumerate(CHAPTERS, start=1)])
        keyint = f":keyint={gop}:min-keyint={gop}" if gop else ""
        video = out.add_stream("libx265" if deep else "libx264",
                               options={"crf": "10", **({"x265-params": "log-level=error" + keyint} if deep else {}),
                                        **({"g": str(gop)} if gop and not deep else {})})
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p10le" if deep else "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        if rich:
            video.metadata["language"] = "fra"
        if colour is not None:
            video.codec_context.colorspace, video.codec_context.color_range = colour
        sound = out.add_stream("aac", rate=48000) if audio else None
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
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            for index in range(24):
                samples = (np.sin(np.arange(1024) * (index + 1) / 50) * 0.3).astype(np.float32)[None]
                block = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                block.sample_rate, block.pts, block.time_base = 48000, index * 1024, Fraction(1, 48000)
                out.mux(sound.encode(block))
            out.mux(sound.encode(None))
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
