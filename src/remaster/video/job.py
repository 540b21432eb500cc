"""A video run as a job of segments: planned and recorded here (:class:`VideoJob`), its segments run one by one in
this process (:func:`~remaster.video.transcode.remaster_video`) or on Ray workers (``--engine ray``), each from a
:class:`SegmentTask` — plain values a worker can be sent — and put together when every segment is done."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.errors import InputError, OutputError, RemasterError
from remaster.io.atomic import create_temporary, publish, refuse_overwrite
from remaster.video.assemble import assemble
from remaster.video.encode import EncoderChoice, encode_segment
from remaster.video.formats import container_for, import_av, open_input
from remaster.video.manifest import FinishedSegment, Manifest, parts_folder
from remaster.video.report import VideoReport
from remaster.video.segments import Segment, SegmentFrames, SegmentPlan, plan_segments

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["VideoJob", "SegmentTask", "SegmentRunner", "video_error"]


@dataclass(frozen=True)
class SegmentTask:
    """One segment to run: everything a process with the pipeline needs, as plain values.

    Attributes:
        source: The video.
        part: The file the segment is written to (published only when complete).
        container_name, target_suffix: The output's container and suffix (the encoder follows them).
        segment: Which frames.
        first_frame: The number of its first frame in the video (for messages).
        choice: What was asked of the encoder.
    """

    source: str
    part: str
    container_name: str
    target_suffix: str
    segment: Segment
    first_frame: int
    choice: EncoderChoice


class SegmentRunner:
    """Runs segments of one video with one open source: consecutive segments are decoded on, without seeking.

    Use as a context manager; :meth:`run` a :class:`SegmentTask` at a time.
    """

    def __init__(self, source: str | os.PathLike[str]) -> None:
        self._av = import_av()
        self._source = Path(source)
        self._container: Any = open_input(self._av, self._source)
        self._video = video_stream(self._container, self._source)
        self._frames = SegmentFrames(self._container, self._video)

    def __enter__(self) -> SegmentRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self._container.close()

    def run(self, task: SegmentTask, remasterer: Remasterer,
            on_frame: Callable[[Any], None] | None = None) -> FinishedSegment:
        """Run and encode ``task``'s frames into its part file. Its frames are one
        :class:`~remaster.plugin.FrameSequence` (stages such as face restoration keep state across them), made
        afresh: a segment starts at a keyframe, and may run in another process than the one before it.

        Raises:
            InputError: no frame of the segment could be decoded.
        """
        part = encode_segment(self._av, self._frames.frames(task.segment), Path(task.part), task.container_name,
                              self._video, remasterer.for_sequence(), task.choice, source=self._source,
                              target_suffix=task.target_suffix, first_frame=task.first_frame, on_frame=on_frame)
        if part.frames == 0:
            Path(task.part).unlink(missing_ok=True)
            raise InputError(f"no frame of segment {task.segment.index + 1} could be decoded", path=self._source,
                             hint="the file is truncated or corrupt; re-export it")
        return part


@dataclass
class VideoJob:
    """A video run: its segments, the manifest of those finished, and the output they make.

    Made by :meth:`begin`; :meth:`tasks` are the segments still to do, :meth:`finish` records one, :meth:`complete`
    writes the output once all are done (and removes the side files); :meth:`abandon` after a failure.
    """

    source: Path
    target: Path
    container_name: str
    plan: SegmentPlan
    manifest: Manifest
    choice: EncoderChoice
    overwrite: bool

    @classmethod
    def begin(cls, source: str | os.PathLike[str], target: str | os.PathLike[str], pipeline: str, *,
              overwrite: bool = False, resume: bool = False, choice: EncoderChoice | None = None,
              segment_seconds: float = 5.0) -> VideoJob:
        """Check the output, cut the video into segments and start (or, with ``resume``, take up) its manifest.
        ``pipeline`` is what the frames go through, as :meth:`~remaster.Remasterer.describe` says it: a resumed
        run must do the same.

        Raises:
            InputError, OutputError, UsageError: as :func:`~remaster.video.transcode.remaster_video`.
        """
        av = import_av()
        source, target = Path(source), Path(target)
        choice = choice or EncoderChoice()
        container_name = container_for(target)
        if not overwrite:
            refuse_overwrite(target, source)
        try:
            with open_input(av, source) as container:  # type: ignore[attr-defined]
                plan = plan_segments(container, video_stream(container, source), seconds=segment_seconds)
        except Exception as exc:
            raise video_error(exc, av, source, target) from exc
        if plan.missing:
            raise InputError(f"is truncated: its header says {plan.missing:.1f} s more than its packets hold",
                             path=source, hint="the copy is incomplete: copy, download or export it again")
        # what decides the output (tiling and device change it only within the tiler's guarantees)
        job = {"pipeline": pipeline, "container": container_name, "codec": choice.codec, "crf": choice.crf,
               "preset": choice.preset}
        manifest = Manifest.begin(parts_folder(target), source, job, plan, resume=resume)
        return cls(source, target, container_name, plan, manifest, choice, overwrite)

    def tasks(self) -> list[SegmentTask]:
        """The segments not finished yet, in order."""
        suffix = self.target.suffix.lower()
        starts = [sum(s.frames for s in self.plan.segments[:segment.index]) for segment in self.plan.segments]
        return [SegmentTask(str(self.source), str(self.manifest.part_path(segment, suffix)), self.container_name,
                            suffix, segment, starts[segment.index], self.choice)
                for segment in self.plan.segments if segment.index not in self.manifest.done]

    def finish(self, task: SegmentTask, part: FinishedSegment) -> None:
        """Record ``task``'s segment as written."""
        self.manifest.finish(task.segment, part)

    @property
    def frames_done(self) -> int:
        """Frames of the finished segments."""
        return sum(self.plan.segments[index].frames for index in self.manifest.done)

    def complete(self) -> VideoReport:
        """Put the finished segments and the source's other streams together at the output (published only when
        complete), remove the side files, and say what was done."""
        av = import_av()
        report = VideoReport(self.source, self.target, segments=len(self.plan.segments))
        parts = [self.manifest.done[segment.index] for segment in self.plan.segments]
        first = parts[0]
        report.frames = sum(part.frames for part in parts)
        report.codec, report.pixel_format, report.colour = first.codec, first.pixel_format, dict(first.colour)
        report.stages, report.dropped = list(first.stages), list(first.dropped)
        temp, fd = create_temporary(self.target)
        try:
            with open(fd, "w+b", closefd=False) as sink, \
                    open_input(av, self.source) as container:  # type: ignore[attr-defined]
                assemble(av, container, video_stream(container, self.source),
                         [self.manifest.folder / part.file for part in parts], sink, self.container_name, report)
            publish(temp, self.target, replace=self.overwrite)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            raise video_error(exc, av, self.source, self.target) from exc
        finally:
            os.close(fd)
        self.manifest.remove()
        return report

    def abandon(self, exc: BaseException) -> None:
        """After a failure: the side files go when no segment was finished (nothing to resume); an interrupted run
        (Ctrl-C) keeps them whatever it did."""
        if not self.manifest.done and not isinstance(exc, KeyboardInterrupt):
            self.manifest.remove()


def video_stream(container: Any, source: Path) -> Any:
    """The first video stream of ``container``.

    Raises:
        InputError: it has none (an audio-only file).
    """
    videos = [stream for stream in container.streams if stream.type == "video"]
    if not videos:
        raise InputError("has no video stream", path=source,
                         hint="give a video file (audio-only files are not remastered)")
    return videos[0]


def video_error(exc: BaseException, av: Any, source: Path, target: Path) -> BaseException:
    """``exc`` as remaster says it: its own errors as they are, FFmpeg's as an input error naming the file, the
    system's as an output error; anything else (an interruption) unchanged."""
    if isinstance(exc, RemasterError):
        return exc
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, av.FFmpegError) and isinstance(cause, OSError):
        exc = cause  # writing through PyAV's callback failed: the system's error, not FFmpeg's
    if isinstance(exc, av.FFmpegError):  # FFmpeg's reason, without its error number and the file name again
        return InputError(f"cannot remaster the video: {(exc.strerror or str(exc)).lower()}", path=source,
                          hint="the file is damaged or not a video remaster can decode; re-export it")
    if isinstance(exc, ValueError):
        return InputError(f"cannot remaster the video: {exc}", path=source)
    if isinstance(exc, OSError):
        hint = ("free some space and run the same command again; with {opt:resume}, the segments that were "
                "finished are not done again" if exc.errno == errno.ENOSPC else None)
        return OutputError(f"could not write the video: {(exc.strerror or str(exc)).lower()}", path=target, hint=hint)
    return exc
