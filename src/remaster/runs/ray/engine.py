"""``--engine ray`` behind the engine interface (:class:`~remaster.runs.engine.Engine`): plan with
:func:`~remaster.runs.ray.driver.plan_run`, run on a pool of Ray workers with :func:`~remaster.runs.ray.driver.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from remaster.pipeline.options import PipelineOptions
from remaster.plugin.syntax import StageCall, parse_pipeline, parse_stage
from remaster.runs.engine import Layout, RunObserver
from remaster.runs.plan import BatchItem, count_phrase, summarize, write_report
from remaster.runs.ray.driver import Plan, describe_pipeline, execute, make_spec, plan_run
from remaster.runs.ray.videos import RayVideos, is_video_item
from remaster.video.encode import EncoderChoice

__all__ = ["RayEngine", "run_folder"]


class RayEngine:
    """Runs a folder (or object-storage URIs) on a Ray cluster; each worker builds the pipeline once.

    Args:
        options: The pipeline options, applied in every worker.
        overwrite: Replace existing outputs.
        quality: JPEG/WebP quality of the outputs.
        address: ``None``: a local cluster on loopback (or the one this process is connected to); ``"auto"``,
            ``"ray://head:10001"``: an existing cluster.
        workers: Pool size (default: one per GPU share, else cores ÷ ``cpus_per_worker``).
        cpus_per_worker: CPUs each worker reserves; also its torch threads.
        gpus_per_worker: GPUs each worker reserves (0: CPU workers).
        max_attempts: Tries of an item whose worker died before it becomes an error row.
        wait_for_workers: Seconds to wait for a first worker before saying the cluster has no room.
        cli_words: Items' errors name options as the ``remaster`` command's flags.
        video_codec, crf, encoder_preset: How videos among the items are encoded
            (:func:`remaster.video.remaster_video`); their segments run on the workers.
        resume: An unfinished video goes on from its first unfinished segment.
    """

    def __init__(self, options: PipelineOptions, *, overwrite: bool = False, quality: int | None = None,
                 address: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, max_attempts: int = 3, wait_for_workers: float = 300.0,
                 cli_words: bool = False, video_codec: str | None = None, crf: int | None = None,
                 encoder_preset: str | None = None, resume: bool = False) -> None:
        self.options = options
        self.overwrite = overwrite
        self.quality = quality
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.max_attempts = max_attempts
        self.wait_for_workers = wait_for_workers
        self.cli_words = cli_words
        self.choice = EncoderChoice(video_codec, crf, encoder_preset)
        self.resume = resume
        self._plan: Plan | None = None
        self._report: str | None = None

    def plan(self, layout: Layout) -> list[BatchItem]:
        """The items, as a local run names them (URIs too); see :meth:`Engine.plan`."""
        self._plan = plan_run(list(layout.inputs), layout.output, fmt=layout.fmt, name_template=layout.name_template,
                              suffix=layout.suffix, skip_existing=layout.skip_existing, report=layout.report)
        RayVideos.refuse_uris(self._plan)
        self._report = layout.report
        return self._plan.items

    def run(self, items: list[BatchItem], stages: Sequence[StageCall], observer: RunObserver) -> bool:
        """Start (or join) the cluster and run the items on its workers; see :meth:`Engine.run`."""
        from remaster.runs.ray.cluster import connected

        plan = self._plan
        if plan is None or plan.items is not items:
            raise RuntimeError("RayEngine.run takes the items its plan() gave")
        spec = make_spec(list(stages), self.options, overwrite=self.overwrite, quality=self.quality,
                         cpus_per_worker=self.cpus_per_worker, gpus_per_worker=self.gpus_per_worker,
                         cli_words=self.cli_words)
        todo = [item for item in items if not item.skipped]
        videos = sum(is_video_item(item) for item in todo)
        count = count_phrase(len(todo) - videos, videos)

        def started(worker: dict[str, Any]) -> None:
            observer.ready(f"{worker['describe']} on {worker['device']} in each Ray worker, {count} to do", None)

        segments = RayVideos(plan, describe_pipeline(stages, spec.options) if videos else "", self.choice,
                             overwrite=self.overwrite, resume=self.resume, cli_words=self.cli_words,
                             observer=observer)
        work, settled = segments.work()
        for value in settled:
            _record(items[value["index"]], value, observer)
        if not work:
            return False
        with connected(self.address) as ray:
            return execute(plan, spec, ray, workers=self.workers, cpus_per_worker=self.cpus_per_worker,
                           gpus_per_worker=self.gpus_per_worker, max_attempts=self.max_attempts,
                           wait_for_workers=self.wait_for_workers, report=self._report, on_item=observer.finished,
                           on_start=started, work=work, on_row=segments.on_row)


def _record(item: BatchItem, value: dict[str, Any], observer: RunObserver) -> None:
    """A row settled before the workers start (a video that could not begin, or was finished by an earlier run)."""
    item.ok, item.error, item.seconds, item.extras = value["ok"], value["error"], value["seconds"], value["extras"]
    observer.finished(item)


def run_folder(inputs: str | Sequence[str], output: str, *, stages: str | Sequence[StageCall | str],
               options: PipelineOptions | None = None, address: str | None = None, workers: int | None = None,
               gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0, overwrite: bool = False,
               skip_existing: bool = False, quality: int | None = None, fmt: str | None = None,
               name_template: str | None = None, suffix: str = "", report: str | None = None, max_attempts: int = 3,
               wait_for_workers: float = 300.0, video_codec: str | None = None, crf: int | None = None,
               encoder_preset: str | None = None) -> dict[str, Any]:
    """Run a pipeline over files, folders or object-storage URIs on a Ray cluster: :class:`RayEngine` for Python.

    Plans exactly as a local folder run (:mod:`remaster.runs.plan`), runs the items on Ray actors that each build the
    pipeline once, and returns the report a local run writes with ``--report``.

    Args:
        inputs: Files, folders, or ``s3://`` / ``gs://`` / ``file://`` URIs.
        output: A folder, one file for one input, or a URI.
        stages: Stage calls, stage strings or a pipeline string, as :class:`~remaster.Remasterer` takes them.
        options: The pipeline options (device, precision, tile, limits, ...), in every worker.
        address, workers, gpus_per_worker, cpus_per_worker, max_attempts, wait_for_workers: As :class:`RayEngine`.
        overwrite, skip_existing, quality, fmt, name_template, suffix: As the CLI options of the same names.
        report: A JSON report file, rewritten atomically while the run goes and at its end.
        video_codec, crf, encoder_preset: How videos are encoded; each video's segments run on the workers, and
            ``skip_existing`` also takes up an unfinished video from its first unfinished segment.

    Returns:
        ``{"ok", "skipped", "failed", "not_done", "interrupted", "items": [...]}``,
        as :func:`remaster.runs.plan.summarize`.

    Raises:
        EngineMissingError: Ray is not installed.
        ClusterError: The cluster cannot be reached, or has no room for one worker.
        RemasterError: A planning error, or what stopped the pipeline from being built.
    """
    engine = RayEngine(options or PipelineOptions(), overwrite=overwrite, quality=quality, address=address,
                       workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                       max_attempts=max_attempts, wait_for_workers=wait_for_workers, video_codec=video_codec,
                       crf=crf, encoder_preset=encoder_preset, resume=skip_existing)
    items = engine.plan(Layout((inputs,) if isinstance(inputs, str) else tuple(inputs), output, fmt=fmt,
                               name_template=name_template, suffix=suffix, skip_existing=skip_existing,
                               report=report))
    interrupted = False
    if not all(item.skipped for item in items):
        interrupted = engine.run(items, _stage_calls(stages), _Silent())
    summary = summarize(items, interrupted)
    if report:
        write_report(Path(report), summary)
    return summary


class _Silent:
    """A run observer that says nothing (the library's run: the report is the answer)."""

    def ready(self, header: str, planned: list[str] | None) -> None:
        pass

    def started(self, index: int, item: BatchItem) -> None:
        pass

    def progress(self, index: int, fraction: float, detail: str = "") -> None:
        pass

    def finished(self, item: BatchItem) -> None:
        pass


def _stage_calls(stages: str | Sequence[StageCall | str]) -> list[StageCall]:
    """The stages of a run as data: a pipeline string is read here, once."""
    if isinstance(stages, str):
        return parse_pipeline(stages)
    return [parse_stage(stage) if isinstance(stage, str) else stage for stage in stages]

