"""One video through a pipeline, in resumable segments: cut at the source's keyframes (:mod:`.segments`), each
segment's frames decoded with the source's own colour matrix and range, run and encoded with their own timestamps
into a side file recorded in a manifest (:mod:`.encode`, :mod:`.manifest`), then the segments put end to end with
the other streams copied (:mod:`.assemble`); the file is published only when complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.errors import InputError, OutputError, RemasterError
from remaster.io.atomic import create_temporary, publish, refuse_overwrite
from remaster.video.assemble import assemble
from remaster.video.encode import EncoderChoice, encode_segment
from remaster.video.formats import container_for, import_av, open_input
from remaster.video.manifest import Manifest, parts_folder
from remaster.video.segments import SegmentFrames, SegmentPlan, plan_segments

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["VideoProgress", "VideoReport", "remaster_video"]


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


def remaster_video(source: str | os.PathLike[str], target: str | os.PathLike[str], remasterer: Remasterer, *,
                   overwrite: bool = False, resume: bool = False, codec: str | None = None, crf: int | None = None,
                   encoder_preset: str | None = None, segment_seconds: float = 5.0,
                   progress: Callable[[VideoProgress], None] | None = None) -> VideoReport:
    """Run ``remasterer`` on every frame of the video ``source`` and write ``target``.

    The work is done in segments of at least ``segment_seconds`` (cut at the source's keyframes), each written to
    a side folder beside ``target`` (``.NAME.parts/``) as it finishes; the output appears only when complete, and
    the side folder is then removed. A run that is interrupted (even killed) leaves the finished segments there:
    the same call with ``resume=True`` goes on from the first unfinished one.

    Args:
        source: A video file (recognised by its content).
        target: The output; its suffix chooses the container (``.mkv``, ``.mp4``, ``.mov``, ``.webm``).
        remasterer: The pipeline each frame goes through.
        overwrite: Replace an existing ``target``.
        resume: Continue an interrupted run of the same job (without it, an earlier run's side files are removed
            and the work starts over).
        codec: The video encoder (default: ``libx264`` for 8-bit sources, ``libx265`` for deeper ones;
            ``libvpx-vp9`` into WebM).
        crf: Constant rate factor (default 18: visually lossless for these encoders).
        encoder_preset: The encoder's speed/size preset (default ``medium``).
        segment_seconds: The shortest segment, in seconds of video (0: cut at every keyframe).
        progress: Called after each frame with a :class:`VideoProgress`: the fraction done, frames done and the
            frames the video has.

    Returns:
        A :class:`VideoReport`: frames, segments (and how many were resumed), streams copied and dropped (with the
        reason), colour, stages.

    Raises:
        InputError: not a video, or one that cannot be decoded.
        OutputError: ``target`` exists (without ``overwrite``) or cannot be written; nothing is left there.
        UsageError: an output suffix remaster does not write videos to, an odd output size, or ``resume`` where
            the interrupted run did something else.
    """
    av = import_av()
    source, target = Path(source), Path(target)
    container_name = container_for(target)
    if not overwrite:
        refuse_overwrite(target, source)
    started = time.perf_counter()
    report = VideoReport(source, target)
    choice = EncoderChoice(codec, crf, encoder_preset)
    manifest: Manifest | None = None
    try:
        with open_input(av, source) as container:  # type: ignore[attr-defined]
            plan = plan_segments(container, _video_stream(container, source), seconds=segment_seconds)
        # what decides the output (tiling and device change it only within the tiler's guarantees)
        job = {"pipeline": remasterer.describe(), "container": container_name, "codec": codec, "crf": crf,
               "preset": encoder_preset}
        manifest = Manifest.begin(parts_folder(target), source, job, plan, resume=resume)
        report.segments, report.resumed = len(plan.segments), len(manifest.done)
        with open_input(av, source) as container:  # type: ignore[attr-defined]
            _run_segments(av, container, plan, manifest, remasterer, choice, container_name, report, progress)
        _publish(av, source, target, [manifest.folder / manifest.done[s.index].file for s in plan.segments],
                 container_name, report, overwrite=overwrite)
        manifest.remove()
    except BaseException as exc:
        if manifest is not None and not manifest.done and not isinstance(exc, KeyboardInterrupt):
            manifest.remove()  # nothing to resume: no side files left behind
        if isinstance(exc, RemasterError):
            raise
        if isinstance(exc, av.FFmpegError) or isinstance(exc, ValueError):
            raise InputError(f"cannot remaster the video: {exc}", path=source) from exc
        if isinstance(exc, OSError):
            raise OutputError(f"could not write the video: {exc.strerror or exc}", path=target) from exc
        raise
    report.seconds = time.perf_counter() - started
    return report


def _video_stream(container: Any, source: Path) -> Any:
    videos = [stream for stream in container.streams if stream.type == "video"]
    if not videos:
        raise InputError("has no video stream", path=source,
                         hint="give a video file (audio-only files are not remastered)")
    return videos[0]


def _run_segments(av: Any, container: Any, plan: SegmentPlan, manifest: Manifest, remasterer: Remasterer,
                  choice: EncoderChoice, container_name: str, report: VideoReport,
                  progress: Callable[[VideoProgress], None] | None) -> None:
    """Every segment the manifest does not have yet, run and recorded; progress counts the resumed ones done. Each
    segment's frames are one :class:`~remaster.plugin.FrameSequence` (stages such as face restoration keep state
    across them), made afresh per segment: a segment starts at a keyframe, and may run in another process."""
    video = _video_stream(container, report.source)
    frames = SegmentFrames(container, video)
    done = sum(plan.segments[index].frames for index in manifest.done)

    def tell(_: Any) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(VideoProgress(min(1.0, done / plan.frames) if plan.frames else 0.0, done, plan.frames))

    for segment in plan.segments:
        if segment.index in manifest.done:
            continue
        part = encode_segment(av, frames.frames(segment), manifest.part_path(segment, report.target.suffix.lower()),
                              container_name, video, remasterer.for_sequence(), choice, source=report.source,
                              target_suffix=report.target.suffix.lower(),
                              first_frame=sum(s.frames for s in plan.segments[:segment.index]), on_frame=tell)
        if part.frames == 0:
            if segment.index == 0 and len(plan.segments) == 1:
                raise InputError("has a video stream but no frame could be decoded", path=report.source,
                                 hint="the file is truncated or corrupt; re-export it")
            raise InputError(f"no frame of segment {segment.index + 1} of {len(plan.segments)} could be decoded",
                             path=report.source, hint="the file is truncated or corrupt; re-export it")
        manifest.finish(segment, part)
    first = manifest.done[0]
    report.frames = sum(part.frames for part in manifest.done.values())
    report.codec, report.pixel_format, report.colour, report.stages = (first.codec, first.pixel_format,
                                                                         first.colour, first.stages)
    report.dropped.extend(first.dropped)  # what the encoder could not carry (HDR10 metadata), as each segment


def _publish(av: Any, source: Path, target: Path, parts: list[Path], container_name: str, report: VideoReport, *,
             overwrite: bool) -> None:
    """The segments and the source's other streams into a temporary file beside ``target``, then published."""
    temp, fd = create_temporary(target)
    try:
        with open(fd, "w+b", closefd=False) as sink, open_input(av, source) as container:  # type: ignore[attr-defined]
            assemble(av, container, _video_stream(container, source), parts, sink, container_name, report)
        publish(temp, target, replace=overwrite)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
