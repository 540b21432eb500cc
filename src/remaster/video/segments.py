"""Where a video is cut for resumable work: at the source's keyframes, into segments of a few seconds each.

A segment holds the frames whose timestamps lie in ``[start, end)`` (the source's time base): decoding from its
first keyframe gives all of them, so each segment can be run, encoded and written on its own — resumed after a
crash, or scheduled on another machine — and the segments' packets put end to end make the video.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["Segment", "SegmentPlan", "plan_segments", "SegmentFrames"]


@dataclass(frozen=True)
class Segment:
    """One part of a video.

    Attributes:
        index: Its place, from 0.
        start: The timestamp of its first frame, a keyframe (``None``: from the start of the video).
        end: The first timestamp of the next segment (``None``: to the end).
        frames: The frames it holds (its packets counted).
    """

    index: int
    start: int | None
    end: int | None
    frames: int

    def as_json(self) -> list[int | None]:
        """``[start, end, frames]``."""
        return [self.start, self.end, self.frames]


@dataclass(frozen=True)
class SegmentPlan:
    """A video's segments, in order, and its frames in all.

    Attributes:
        segments: The segments.
        frames: The video's frames (its packets with a timestamp, counted: exact where the container has no count).
        time_base: The time base of the segments' bounds.
        duration: The video's length in seconds (``None`` where unknown).
        missing: Seconds of the file its header declares but its packets do not reach (a truncated file: the
            check is made where the header's length is written by the muxer, Matroska and MP4/MOV); 0 otherwise.
    """

    segments: tuple[Segment, ...]
    frames: int
    time_base: Fraction
    duration: float | None
    missing: float = 0.0

    def as_json(self) -> list[list[int | None]]:
        """The segments as ``[start, end, frames]`` (what a manifest records)."""
        return [segment.as_json() for segment in self.segments]


def plan_segments(container: Any, video: Any, *, seconds: float) -> SegmentPlan:
    """Cut ``video`` (a stream of the open ``container``, which is read to its end) at keyframes at least
    ``seconds`` apart (0: at every keyframe); a tail shorter than half of that joins the segment before it.

    The packets are read, not decoded (those of every stream: where they end is checked against the header's
    length). A stream whose packets lack timestamps is one segment.
    """
    stamps: list[int] = []
    keys: list[int] = []
    timed = True
    reached = 0.0
    for packet in container.demux():
        if packet.size == 0:
            continue  # the demuxer's flush packet
        if packet.pts is not None and packet.time_base:
            reached = max(reached, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if packet.stream is not video:
            continue
        if packet.pts is None:
            timed = False
            stamps.append(0)
            continue
        stamps.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    time_base = Fraction(video.time_base) if video.time_base else Fraction(1, 1)
    duration = _duration(video, container, stamps if timed else [], time_base)
    missing = _missing(container, stamps, time_base, reached) if timed else 0.0
    if not timed or not keys:
        return SegmentPlan((Segment(0, None, None, len(stamps)),), len(stamps), time_base, duration, missing)
    span = seconds / time_base if seconds > 0 else 0
    last = max(stamps)
    starts: list[int] = []
    first = min(stamps)
    for key in sorted(set(keys)):
        previous = starts[-1] if starts else first
        if key <= first or key - previous < max(span, 1):
            continue
        if last - key < span / 2:
            break  # too short a tail: it stays with the segment before
        starts.append(key)
    bounds: list[int | None] = [None, *starts, None]
    ordered = sorted(stamps)  # frames per segment by bisection: a two-hour film has ~170,000 of them
    edges = [0, *(bisect_left(ordered, start) for start in starts), len(ordered)]
    segments = [Segment(index, bounds[index], bounds[index + 1], edges[index + 1] - edges[index])
                for index in range(len(bounds) - 1)]
    return SegmentPlan(tuple(segments), len(stamps), time_base, duration, missing)


def _missing(container: Any, stamps: list[int], time_base: Fraction, reached: float) -> float:
    """Seconds between where the packets end and the length the header declares, beyond half a second or three
    frame gaps (whichever is more); 0 where the format's length is not the muxer's own record of it."""
    name = container.format.name if container.format else ""
    if not container.duration or not ("matroska" in name or "mov" in name):
        return 0.0
    start = float(container.start_time or 0) / 1_000_000
    declared = start + float(container.duration) / 1_000_000
    ordered = sorted(stamps)
    gaps = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    gap = float(gaps[len(gaps) // 2] * time_base) if gaps else 0.0
    short = declared - reached
    return short if short > max(0.5, 3 * gap) else 0.0


def _duration(video: Any, container: Any, stamps: list[int], time_base: Fraction) -> float | None:
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    if container.duration:
        return float(container.duration) / 1_000_000
    return float((max(stamps) - min(stamps)) * time_base) if len(stamps) > 1 else None


class SegmentFrames:
    """The decoded frames of segments, one segment after another; it seeks only where a segment does not follow
    the one read before it.

    Frames come out of the decoder in presentation order, so a segment ends at the first frame of the next; frames
    before a segment's start that decoding from its keyframe gives (leading pictures of an open GOP) are left out:
    they belong to the segment before.
    """

    def __init__(self, container: Any, video: Any) -> None:
        self._container, self._video = container, video
        self._decoded: Iterator[Any] | None = None
        self._held: Any = None
        self._next: int | None = None  # the segment that follows what was read

    def frames(self, segment: Segment) -> Iterator[Any]:
        """The decoded frames of ``segment``, in order."""
        if self._decoded is None or self._next != segment.index:
            self._seek(segment)
        assert self._decoded is not None
        while True:
            frame, self._held = (self._held, None) if self._held is not None else (next(self._decoded, None), None)
            if frame is None:
                self._next = None
                return
            if frame.pts is not None and segment.start is not None and frame.pts < segment.start:
                continue
            if frame.pts is not None and segment.end is not None and frame.pts >= segment.end:
                self._held, self._next = frame, segment.index + 1
                return
            yield frame

    def _seek(self, segment: Segment) -> None:
        if segment.start is not None:
            self._container.seek(segment.start, stream=self._video, backward=True, any_frame=False)
        elif self._decoded is not None:
            self._container.seek(0, stream=self._video, backward=True, any_frame=False)
        self._held = None
        self._decoded = self._decode()

    def _decode(self) -> Iterator[Any]:
        for packet in self._container.demux(self._video):
            yield from packet.decode()
