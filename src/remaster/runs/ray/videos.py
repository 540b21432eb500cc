"""The videos of a Ray run: each a :class:`~remaster.video.job.VideoJob` whose segments are work items of their own,
so that the segments of one video (and of several) run on all the workers at once. The driver alone records
finished segments in the video's manifest and puts the video together when its last segment is in; a segment whose
worker died is run again (its file is written whole or not at all), and a killed driver leaves the finished
segments for ``--resume``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from remaster.runs.engine import RunObserver
from remaster.runs.local import item_error
from remaster.runs.plan import BatchItem
from remaster.runs.ray import storage
from remaster.runs.ray.actors import row
from remaster.runs.ray.driver import Plan
from remaster.runs.ray.spec import WorkItem
from remaster.video.encode import EncoderChoice
from remaster.video.formats import VIDEO_SUFFIXES
from remaster.video.job import SegmentTask, VideoJob
from remaster.video.manifest import FinishedSegment

__all__ = ["is_video_item", "RayVideos"]


def is_video_item(item: BatchItem) -> bool:
    """A planned item that is a video (by its suffix, as a folder run collects them)."""
    return Path(str(item.source)).suffix.lower() in VIDEO_SUFFIXES


class RayVideos:
    """Turns a plan's videos into segment work items, and the segments' rows back into each video's row.

    Args:
        plan: The run's plan.
        pipeline: What the frames go through, as the pipeline describes itself (the manifest's job).
        choice: What was asked of the encoder.
        overwrite, resume: As for a local run.
        cli_words: Errors name options as the ``remaster`` command's flags.
        observer: Told each video's progress in segments.
    """

    def __init__(self, plan: Plan, pipeline: str, choice: EncoderChoice, *, overwrite: bool, resume: bool,
                 cli_words: bool, observer: RunObserver) -> None:
        self._plan, self._pipeline, self._choice = plan, pipeline, choice
        self._overwrite, self._resume, self._cli_words = overwrite, resume, cli_words
        self._observer = observer
        self._jobs: dict[int, VideoJob] = {}
        self._tasks: dict[int, dict[int, SegmentTask]] = {}
        self._started: dict[int, float] = {}
        self._resumed: dict[int, int] = {}

    def work(self) -> tuple[list[WorkItem], list[dict[str, Any]]]:
        """The work items of the run (its images, and each video's unfinished segments), and the rows of videos
        already settled before any worker runs: those whose job could not start, and those an earlier run had
        finished every segment of (put together here)."""
        work: list[WorkItem] = []
        settled: list[dict[str, Any]] = []
        for index, (item, existed) in enumerate(zip(self._plan.items, self._plan.existed)):
            if item.skipped:
                continue
            plain = WorkItem(index, str(item.source), str(item.target), existed=existed)
            if not is_video_item(item):
                work.append(plain)
                continue
            self._started[index] = time.perf_counter()
            try:
                job = VideoJob.begin(item.source, item.target, self._pipeline, overwrite=self._overwrite,
                                     resume=self._resume, choice=self._choice)
            except Exception as exc:
                settled.append(row(plain, ok=False, error=item_error(item.source, exc, cli=self._cli_words)))
                continue
            self._jobs[index], self._resumed[index] = job, len(job.manifest.done)
            tasks = job.tasks()
            if not tasks:
                settled.append(self._complete(index, plain))
                continue
            self._tasks[index] = {task.segment.index: task for task in tasks}
            work.extend(WorkItem(index, task.source, task.part, existed=True, task=task) for task in tasks)
        return work, settled

    def on_row(self, value: dict[str, Any]) -> dict[str, Any] | None:
        """A worker's row: an image's as it is; a segment's recorded, and the video's row once it is complete or
        has failed (``None`` meanwhile, and for segments of a video already settled)."""
        index = value["index"]
        if index not in self._started:
            return value  # an image
        job = self._jobs.get(index)
        if job is None:
            return None  # a segment of a video that already failed
        item = self._plan.items[index]
        plain = WorkItem(index, str(item.source), str(item.target))
        if not value["ok"]:
            self._settle(index)
            return {**value, "seconds": time.perf_counter() - self._started[index]}
        task = self._tasks[index].pop(value["extras"]["segment"])
        try:
            job.finish(task, FinishedSegment(**value["extras"]["part"]))
        except Exception as exc:
            self._settle(index)
            return row(plain, ok=False, error=item_error(item.source, exc, cli=self._cli_words))
        total = len(job.plan.segments)
        done = len(job.manifest.done)
        self._observer.progress(index, done / total, f"segment {done} of {total}")
        if self._tasks[index]:
            return None
        return self._complete(index, plain)

    def _complete(self, index: int, plain: WorkItem) -> dict[str, Any]:
        job = self._jobs[index]
        try:
            report = job.complete()
        except Exception as exc:
            self._settle(index)
            return row(plain, ok=False, error=item_error(job.source, exc, cli=self._cli_words))
        report.resumed = self._resumed[index]
        self._settle(index)
        return row(plain, ok=True, seconds=time.perf_counter() - self._started[index], extras=report.as_extras())

    def _settle(self, index: int) -> None:
        """The video is done with: later rows of its segments are ignored. Its side files stay where a segment
        was finished (``--resume`` takes them up)."""
        job = self._jobs.pop(index, None)
        if job is not None and job.manifest.folder.exists() and not job.manifest.done:
            job.manifest.remove()
        self._tasks.pop(index, None)

    @staticmethod
    def refuse_uris(plan: Plan) -> None:
        """Videos are read and written on a shared file system: a video URI is refused in one line.

        Raises:
            UsageError: a video's source or output is a URI.
        """
        from remaster.errors import UsageError

        for item in plan.items:
            if is_video_item(item) and (storage.is_uri(str(item.source)) or storage.is_uri(str(item.target))):
                raise UsageError(f"videos in object storage are not run on Ray yet ({item.source})",
                                 hint="copy the video to a folder every worker sees, or run it without --engine ray")
