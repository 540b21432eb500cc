"""Folder runs that hide I/O: the next images are decoded and finished ones encoded and written while the network runs.

Three stages joined by small bounded queues: a reader thread decodes up to ``read_ahead`` images ahead, the
caller's thread runs the pipeline (the network keeps every core busy, so it stays on one thread), and a writer
thread encodes and writes up to ``write_behind`` results behind. Every item passes through all three in input
order, so outcomes come back in input order and the report reads as a sequential run's. Memory is bounded by the
queue sizes: at most ``read_ahead`` decoded inputs and ``write_behind`` results wait besides the one running.
Outputs are written atomically by :func:`remaster.io.save` as before; on Ctrl-C (or any exception in the caller's
thread) no new image is started, the results already computed are still written, the threads are joined, and the
exception goes on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster import io
from remaster.errors import RemasterError
from remaster.runs.engine import Layout, RunObserver
from remaster.runs.plan import (
    FOLDER_SEPARATORS,
    BatchItem,
    check_writable,
    collect_inputs,
    count_phrase,
    plan_outputs,
)
from remaster.runs.reading import reading
from remaster.video.formats import is_video_name

if TYPE_CHECKING:
    from remaster.io.image import Image
    from remaster.pipeline.options import PipelineOptions
    from remaster.pipeline.remasterer import Remasterer
    from remaster.plugin.host import PluginHost
    from remaster.plugin.syntax import StageCall

__all__ = ["LocalEngine", "run_items", "item_error"]

log = logging.getLogger(__name__)

#: What a reader or writer thread waits for at most per look at the stop flag (seconds); a bound, not a delay.
_POLL = 0.1


def item_error(source: object, exc: BaseException, *, cli: bool = False) -> str:
    """The report's one-line error for ``exc`` raised on the input ``source`` (a path or URI): it names the file.

    With ``cli``, options in its hint are spelt as the ``remaster`` command's flags (:meth:`RemasterError.for_cli`).
    """
    if isinstance(exc, RemasterError):  # a stage's error names the stage; the line must name the file too
        text = exc.for_cli() if cli else str(exc)
        return text if str(source) in text else f"{source}: {text}"
    return f"{source}: {type(exc).__name__}: {exc}"


class LocalEngine:
    """Runs a folder in this process: the pipeline built once, reading and writing overlapped (:func:`run_items`).

    Args:
        options: The pipeline options.
        host: The plugin host the stages come from.
        overwrite: Replace existing outputs.
        quality: JPEG/WebP quality of the outputs.
        cli_words: Items' errors name options as the ``remaster`` command's flags.
        video_codec, crf, encoder_preset: How videos among the items are encoded
            (:func:`remaster.video.remaster_video`).
        resume: An unfinished video goes on from its first unfinished segment (with ``skip_existing`` in the
            layout, this continues an interrupted run).
    """

    def __init__(self, options: PipelineOptions, host: PluginHost, *, overwrite: bool = False,
                 quality: int | None = None, cli_words: bool = False, video_codec: str | None = None,
                 crf: int | None = None, encoder_preset: str | None = None, resume: bool = False) -> None:
        self.options = options
        self.host = host
        self.overwrite = overwrite
        self.quality = quality
        self.cli_words = cli_words
        self.video_codec, self.crf, self.encoder_preset = video_codec, crf, encoder_preset
        self.resume = resume

    def plan(self, layout: Layout) -> list[BatchItem]:
        """The items, named by :func:`~remaster.runs.plan.plan_outputs`; see :meth:`Engine.plan`."""
        output = Path(layout.output)
        items = plan_outputs(collect_inputs(list(layout.inputs), output=output), output, layout.fmt,
                             name_template=layout.name_template, suffix=layout.suffix,
                             folder=layout.output.endswith(FOLDER_SEPARATORS))
        check_writable(items, layout.report)  # before the stages are resolved: a model file given as one is read then
        if layout.skip_existing:
            for item in items:  # outputs are written atomically: one that is there is complete
                item.skipped = Path(item.target).is_file()
        return items

    def run(self, items: list[BatchItem], stages: Sequence[StageCall], observer: RunObserver) -> bool:
        """Build the pipeline, then run it over the items; see :meth:`Engine.run`."""
        from remaster.pipeline.devices import describe_target
        from remaster.pipeline.remasterer import Remasterer

        remasterer = Remasterer(list(stages), self.options, host=self.host)
        videos = {id(item) for item in items if not item.skipped and is_video_name(item.source)}
        images = len(items) - len(videos)
        observer.ready(f"{remasterer.describe()} on {describe_target(remasterer.device, remasterer.vulkan)}, "
                       f"{count_phrase(images, len(videos))}",
                       [choice.name for choice in remasterer.precisions(8)])
        remasterer.prepare()  # missing weights stop the run here, before any image is read
        try:
            for _ in run_items(remasterer, [item for item in items if id(item) not in videos], overwrite=self.overwrite,
                               quality=self.quality, on_start=observer.started, progress=observer.progress,
                               cli_words=self.cli_words, on_done=observer.finished):
                pass  # each outcome went to the observer as it came, from the writer thread
            for index, item in enumerate(items):
                if id(item) in videos:
                    self._run_video(remasterer, index, item, observer)
        except KeyboardInterrupt:
            return True
        return False

    def _run_video(self, remasterer: Remasterer, index: int, item: BatchItem, observer: RunObserver) -> None:
        """One video of the run, every frame through ``remasterer``; its outcome told as an image's is."""
        from remaster.video.transcode import remaster_video

        observer.started(index, item)
        started = time.perf_counter()
        try:
            report = remaster_video(item.source, item.target, remasterer, overwrite=self.overwrite, resume=self.resume,
                                    codec=self.video_codec, crf=self.crf, encoder_preset=self.encoder_preset,
                                    progress=lambda done: observer.progress(index, done.fraction, str(done)))
        except Exception as exc:  # one video failing must not stop the others
            item.ok, item.error, item.exception = False, item_error(item.source, exc, cli=self.cli_words), exc
        else:
            item.ok = True
            item.extras = report.as_extras()
            if report.dropped:
                log.warning("%s: %d stream(s) not copied: %s", item.target, len(report.dropped),
                            "; ".join(report.dropped))
        item.seconds = time.perf_counter() - started
        observer.finished(item)


@dataclass
class _Work:
    """One item on its way through the three stages."""

    item: BatchItem
    image: Image | None = None
    result: Image | None = None
    error: BaseException | None = None
    seconds: float = 0.0


def run_items(
    remasterer: Remasterer,
    items: Sequence[BatchItem],
    *,
    overwrite: bool = False,
    quality: int | None = None,
    read_ahead: int = 2,
    write_behind: int = 1,
    on_start: Callable[[int, BatchItem], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    cli_words: bool = False,
    on_done: Callable[[BatchItem], None] | None = None,
) -> Iterator[BatchItem]:
    """Run ``remasterer`` on every item not marked ``skipped``, overlapping reading and writing with the work.

    Yields each item, in input order, once its outcome is known: written (``ok``, ``extras`` from the stages),
    failed (``error``: one line naming the file; ``exception``: what was raised), or skipped (passed through).
    ``seconds`` is the item's own time: decoding, running and writing it.

    Args:
        remasterer: The pipeline, prepared or not.
        items: The planned items (:func:`remaster.runs.plan.plan_outputs`).
        overwrite: Replace existing outputs; otherwise an existing one fails its item before it is read.
        quality: JPEG/WebP quality of the outputs.
        read_ahead: Inputs decoded ahead of the one running (at least 1).
        write_behind: Results waiting to be written while the next image runs (at least 1).
        on_start: Called with the index and item before the pipeline runs on it (in the caller's thread).
        progress: Called with the index and the fraction of that item's pipeline done (in the caller's thread).
        cli_words: Items' errors name options as the ``remaster`` command's flags (``--overwrite``), not as
            Python arguments.
        on_done: Called with each item not skipped as soon as its outcome is known (its output is on disk, or it
            failed), from the writer thread: a line about an image can be printed when the image is written,
            not when the next one is done, and also for the images written after Ctrl-C.
    """
    stop = threading.Event()
    to_run: queue.Queue[_Work | None] = queue.Queue(max(1, read_ahead))
    to_write: queue.Queue[_Work | None] = queue.Queue(max(1, write_behind))
    done: queue.Queue[_Work] = queue.Queue()
    fatal: list[BaseException] = []  # a KeyboardInterrupt or SystemExit raised in the writer: the caller's to raise

    def put(target: queue.Queue[Any], value: Any) -> bool:
        while not stop.is_set():
            try:
                target.put(value, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                work = _Work(item)
                if not item.skipped:
                    started = time.perf_counter()
                    try:
                        with reading(item.source):  # a decoder's warnings are said about this file
                            work.image = remasterer.read_file(item.source, item.target, overwrite=overwrite)
                    except Exception as exc:  # reported as the item's failure, in its turn
                        work.error = exc
                    work.seconds = time.perf_counter() - started
                if not put(to_run, work):
                    return
        finally:
            put(to_run, None)

    def write() -> None:
        while True:
            work = to_write.get()
            if work is None:
                return
            if work.result is not None:
                started = time.perf_counter()
                try:
                    io.save(work.result, work.item.target, quality=quality, overwrite=overwrite)
                    work.item.ok, work.item.extras = True, dict(work.result.meta.extras)
                except Exception as exc:
                    work.error = exc
                except BaseException as exc:  # the item stays not done; its temporary file is already gone
                    fatal.append(exc)
                    stop.set()
                    return
                work.result = None  # the full-size result is not kept once written
                work.seconds += time.perf_counter() - started
            _settle(work, cli_words)
            if on_done is not None and not work.item.skipped:
                with contextlib.suppress(Exception):  # a report must not stop the writing of the next ones
                    on_done(work.item)
            done.put(work)

    def hand_on(work: _Work | None) -> None:
        """Give ``work`` to the writer; raise what ended the writer if it died."""
        while True:
            if fatal:
                raise fatal[0]
            try:
                to_write.put(work, timeout=_POLL)
                return
            except queue.Full:
                if not writer.is_alive() and not fatal:
                    raise RuntimeError("the writer thread ended unexpectedly") from None

    def finished_so_far() -> Iterator[BatchItem]:
        """The items the writer has finished, without waiting for more."""
        while True:
            try:
                yield done.get_nowait().item
            except queue.Empty:
                return

    reader = threading.Thread(target=read, name="remaster-read", daemon=True)
    writer = threading.Thread(target=write, name="remaster-write", daemon=True)
    reader.start()
    writer.start()
    try:
        for index in range(len(items)):
            work = to_run.get()
            if work is None:  # the reader stopped early: only when told to
                break
            if work.image is not None:
                if on_start is not None:
                    on_start(index, work.item)
                started = time.perf_counter()
                try:
                    work.result = remasterer.run_for_file(
                        work.image, work.item.target,
                        progress=None if progress is None else functools.partial(progress, index))
                except Exception as exc:  # keep a folder run going past one bad file, whatever broke
                    work.error = exc
                work.image = None
                work.seconds += time.perf_counter() - started
            hand_on(work)
            yield from finished_so_far()
        hand_on(None)
        writer.join()
        if fatal:
            raise fatal[0]
        yield from finished_so_far()
    finally:
        stop.set()  # the reader starts nothing more; results already computed are still written
        if writer.is_alive():
            with contextlib.suppress(BaseException):  # already unwinding: the first exception is the one to raise
                hand_on(None)
            writer.join()
        reader.join(timeout=60)


def _settle(work: _Work, cli: bool) -> None:
    item = work.item
    item.seconds = work.seconds
    if work.error is not None:
        item.ok = False
        item.error = item_error(item.source, work.error, cli=cli)
        item.exception = work.error

