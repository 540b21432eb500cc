"""What a video run tells while it goes (:class:`VideoProgress`) and what it did (:class:`VideoReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["VideoProgress", "VideoReport"]


@dataclass(frozen=True)
class VideoProgress:
    """How far a video run is, told after each frame.

    Attributes:
        fraction: The part done: frames done against the video's frames.
        frames: Frames done so far (with those of segments an interrupted run had finished).
        expected: The frames the video has: its packets, counted before the run (exact, variable frame rate or not,
            whether or not the container records a count).
    """

    fraction: float
    frames: int
    expected: int

    def __str__(self) -> str:
        """``frame 120 of 240``."""
        return f"frame {self.frames} of {max(self.expected, self.frames)}"


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
        segments: The segments the video was cut into (at its keyframes).
        resumed: Segments an earlier, interrupted run had finished (``resume=True``), not done again.
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
    segments: int = 0
    resumed: int = 0

    def as_extras(self) -> dict[str, Any]:
        """What a folder run's item records of the video (``--json``, ``--report``): ``"stages"`` and ``"video"``."""
        return {"stages": self.stages, "video": {
            "frames": self.frames, "codec": self.codec, "pixel_format": self.pixel_format, "colour": self.colour,
            "copied": self.copied, "converted": self.converted, "dropped": self.dropped, "segments": self.segments,
            "resumed": self.resumed}}
