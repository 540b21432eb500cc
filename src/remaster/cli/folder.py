"""The one console loop of a folder run, whatever the engine: planning, the progress bar, a line per image, the
closing line, the report and the exit code.

The engine (:class:`~remaster.runs.local.LocalEngine`, or :class:`~remaster.runs.ray.engine.RayEngine` with
``--engine ray``) plans and runs; this module only talks, through a :class:`~remaster.runs.engine.RunObserver`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.cli import hooks
from remaster.cli.console import warn_plugin_errors
from remaster.cli.distributed import check_engine_options, ray_engine
from remaster.cli.parser import pipeline_options
from remaster.plugin.syntax import StageCall
from remaster.runs.engine import Engine, Layout
from remaster.runs.plan import BatchItem, json_value, summarize, write_report
from remaster.video.formats import is_video_name

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost

__all__ = ["run_folder"]


def run_folder(args: argparse.Namespace, make_stages: Callable[[], list[StageCall]], host: PluginHost) -> int:
    """Run the stages ``make_stages`` gives over the inputs of ``args``, on the engine they ask for; returns the
    exit code. The stages are made after planning: a model file given as a stage is read then, and a resumed run
    whose outputs are all there reads no model at all."""
    engine: Engine
    if check_engine_options(args):
        engine = ray_engine(args)
    else:
        from remaster.runs.local import LocalEngine

        engine = LocalEngine(pipeline_options(args), host, overwrite=args.overwrite, quality=args.quality,
                             cli_words=True, video_codec=args.video_codec, crf=args.crf,
                             encoder_preset=args.encoder_preset, resume=args.resume)
    layout = Layout(tuple(args.inputs), args.output, fmt=args.format, name_template=args.name_template,
                    suffix=args.suffix, skip_existing=args.resume, report=args.report)
    items = engine.plan(layout)
    talk = not args.quiet and not args.json
    skipped = sum(item.skipped for item in items)
    if talk:
        for item in items:
            if item.skipped:
                print(_skipped_line(item), file=sys.stderr)
    if skipped == len(items):  # a finished run, resumed: no model is read, no cluster started
        return _finish(args, items, interrupted=False)
    console = _Console(args, host, len(items), skipped)
    try:
        interrupted = engine.run(items, make_stages(), console)
    except KeyboardInterrupt:  # while models load or the cluster starts: the report says what was done
        if args.report:
            write_report(Path(args.report), summarize(items, interrupted=True))
        raise
    finally:
        console.close()
    return _finish(args, items, interrupted)


class _Console:
    """The :class:`~remaster.runs.engine.RunObserver` of the ``remaster`` command: stderr lines and a progress bar."""

    def __init__(self, args: argparse.Namespace, host: PluginHost, total: int, skipped: int) -> None:
        from tqdm import tqdm

        self.args, self.host = args, host
        self.lock = threading.Lock()  # finished() comes from the engine's writer thread
        self.talk = not args.quiet and not args.json
        self.done, self.failed = skipped, 0
        self.planned: list[str] | None = None
        self.name = ""  # the item running now
        self.bar = tqdm(total=total, initial=skipped, unit="img", disable=args.quiet or None, leave=False,
                        file=sys.stderr, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

    def ready(self, header: str, planned: list[str] | None) -> None:
        warn_plugin_errors(self.args, self.host)
        self.planned = planned
        if self.talk:
            self.bar.write(f"remaster: {header}", file=sys.stderr)

    def started(self, index: int, item: BatchItem) -> None:
        self.name = Path(item.source).name
        self.bar.set_postfix_str(self.name, refresh=False)

    def progress(self, index: int, fraction: float, detail: str = "") -> None:
        with self.lock:
            self.bar.n = self.done + fraction
            if detail:  # a video: its frame count beside its name; the bar's ETA counts the fractions
                self.bar.set_postfix_str(f"{self.name} {detail}", refresh=False)
            self.bar.refresh()

    def finished(self, item: BatchItem) -> None:
        with self.lock:
            self._finished(item)

    def _finished(self, item: BatchItem) -> None:
        self.done += 1
        self.bar.n = self.done
        self.bar.refresh()
        if item.error:
            self.failed += 1
            if self.args.debug and item.exception is not None:
                traceback.print_exception(item.exception)
            self.bar.write(f"remaster: error: {item.error}", file=sys.stderr)
        elif self.talk:
            self.bar.write(f"{item.source} -> {item.target} ({item.seconds:.1f} s{_video_note(item)}"
                           f"{_plugin_notes(item.extras, self.bar, self.host)}"
                           f"{'' if self.planned is None else _precision_note(item.extras, self.planned)})",
                           file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _skipped_line(item: BatchItem) -> str:
    return f"{item.source} -> {item.target} (skipped: already exists)"


def _finish(args: argparse.Namespace, items: list[BatchItem], interrupted: bool) -> int:
    """Report the run (--report, --json or the closing line) and return its exit code."""
    summary = summarize(items, interrupted)
    if args.report:
        write_report(Path(args.report), summary)
    if args.json:
        print(json.dumps(summary, indent=2, default=json_value))
    elif not args.quiet:
        done = summary["ok"]
        videos = sum(is_video_name(item.source) for item in items)
        noun = "image(s)" if not videos else "video(s)" if videos == len(items) else "file(s)"
        print(f"{done} of {len(items)} {noun} written to {args.output}" + (
            f", {summary['skipped']} skipped (already there)" if summary["skipped"] else "") + (
            f", {summary['failed']} failed" if summary["failed"] else ""), file=sys.stderr)
    if interrupted:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


def _video_note(item: BatchItem) -> str:
    """For a video's line: its frames and the rate they went at, the streams re-encoded for the container
    (subtitles into mov_text) and those that could not come along."""
    video = item.extras.get("video")
    if not isinstance(video, dict):
        return ""
    frames = int(video.get("frames", 0))
    resumed = int(video.get("resumed", 0))
    if resumed:  # the rate would count frames an earlier run did
        rate = f" ({resumed} of {video.get('segments')} segments done before, resumed)"
    else:
        rate = f" at {frames / item.seconds:.1f} fps" if item.seconds > 0 else ""
    converted = video.get("converted") or []
    dropped = video.get("dropped") or []
    return (f", {frames} frames{rate}" + (f", {', '.join(converted)} converted" if converted else "")
            + (f", {len(dropped)} stream(s) not copied" if dropped else ""))


def _precision_note(extras: dict[str, Any], planned: list[str]) -> str:
    """For the per-image line: the precisions that ran when they are not the ones the header announced, and
    the time compilation took in this image (``--compile``)."""
    stages = extras.get("stages", [])
    ran = [str(entry.get("precision")) for entry in stages]
    note = f", ran in {' | '.join(ran)}" if ran and ran != planned else ""
    compiled = sum(float(entry.get("compile_seconds", 0.0)) for entry in stages)
    return note + (f", compiling took {compiled:.1f} s" if compiled else "")


def _plugin_notes(extras: dict[str, Any], bar: Any, host: PluginHost) -> str:
    """What plugins say about what their stages reported (``remaster_item_note``), for the per-image log line."""
    known = len(host.warnings)
    notes = hooks.item_notes(host, extras)
    for warning in host.warnings[known:]:  # a note that broke is said once, and the run goes on
        bar.write(f"remaster: warning: plugin {warning}", file=sys.stderr)
    return "".join(f", {note}" for note in notes)
