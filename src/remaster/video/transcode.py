"""One video through a pipeline, in resumable segments: cut at the source's keyframes (:mod:`.segments`), each
segment's frames decoded with the source's own colour matrix and range, run and encoded with their own timestamps
into a side file recorded in a manifest (:mod:`.encode`, :mod:`.manifest`), then the segments put end to end with
the other streams copied (:mod:`.assemble`); the file is published only when complete. The job's parts are in
:mod:`.job`, which ``--engine ray`` uses too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from remaster.video.encode import EncoderChoice
from remaster.video.formats import import_av
from remaster.video.job import SegmentRunner, VideoJob, video_error
from remaster.video.report import VideoProgress, VideoReport

if TYPE_CHECKING:
    from remaster.pipeline.remasterer import Remasterer

__all__ = ["VideoProgress", "VideoReport", "remaster_video"]


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
    started = time.perf_counter()
    job = VideoJob.begin(source, target, remasterer.describe(), overwrite=overwrite, resume=resume,
                         choice=EncoderChoice(codec, crf, encoder_preset), segment_seconds=segment_seconds)
    resumed, done, expected = len(job.manifest.done), job.frames_done, job.plan.frames

    def tell(_: Any) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(VideoProgress(min(1.0, done / expected) if expected else 0.0, done, expected))

    try:
        tasks = job.tasks()
        if tasks:
            with SegmentRunner(job.source) as runner:
                for task in tasks:
                    job.finish(task, runner.run(task, remasterer, on_frame=tell))
        report = job.complete()
    except BaseException as exc:
        job.abandon(exc)
        raise video_error(exc, import_av(), job.source, job.target) from exc
    report.resumed = resumed
    report.seconds = time.perf_counter() - started
    return report
