"""``upscale``, ``run`` and ``degrade``: the stages each asks for, run over the planned folder with a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.cli import hooks
from remaster.cli.console import warn_plugin_errors
from remaster.cli.parser import pipeline_options, run_options
from remaster.errors import UsageError
from remaster.plugin.syntax import StageCall, parse_pipeline
from remaster.runs.plan import (
    FOLDER_SEPARATORS,
    BatchItem,
    check_writable,
    collect_inputs,
    json_value,
    plan_outputs,
    summarize,
    write_report,
)

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def upscale_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upscale`` command's arguments."""
    parser.add_argument("--model", help="upscaler stage name (see 'remaster stages')")
    parser.add_argument("--scale", type=float,
                        help="output scale; resampled from the model's native scale if different")
    run_options(parser)


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` command's arguments."""
    parser.add_argument("pipeline", help="stages separated by '|'")
    run_options(parser)


def degrade_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``degrade`` command's arguments."""
    parser.add_argument("--blur", type=float, metavar="SIGMA", help="Gaussian blur sigma in pixels")
    parser.add_argument("--downsample", type=float, metavar="F", help="downsample factor, e.g. 0.25")
    parser.add_argument("--noise", type=float, metavar="SIGMA", help="Gaussian noise sigma in 8-bit units")
    parser.add_argument("--jpeg", type=int, metavar="Q", help="JPEG quality 1-100")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible)")
    run_options(parser)


def upscale(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster upscale``: the chosen upscaler, in the pipeline plugins make of it (``remaster_upscale_pipeline``)."""
    return _process(args, lambda: _upscale_pipeline(args, host), host)


def run(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster run``: the pipeline given."""
    return _process(args, lambda: parse_pipeline(args.pipeline), host)


def degrade(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster degrade``: the degradations asked for, in a fixed order."""
    return _process(args, lambda: _degrade_pipeline(args), host)


def _upscale_pipeline(args: argparse.Namespace, host: PluginHost | None = None) -> list[StageCall]:
    from remaster.pipeline.configured import default_upscaler, resolve_spec
    from remaster.plugin.host import get_host

    host = host or get_host()
    upscaler = StageCall(args.model or default_upscaler(host))  # a model file's path is a name as it stands
    spec = resolve_spec(upscaler.name, host)
    if args.scale is not None and args.scale <= 0:
        raise UsageError(f"--scale must be positive, not {args.scale}")
    # A plugin's options may turn the upscale into another pipeline (remaster-gfpgan's --face).
    pipeline = hooks.upscale_pipeline(host, vars(args), upscaler, args.scale or spec.info.scale)
    if pipeline is not None:
        return pipeline
    if args.scale is None:
        return [upscaler]
    if spec.info.scale_param is not None:
        return [upscaler.with_params(**{spec.info.scale_param: args.scale})]
    native = spec.info.scale
    if abs(args.scale - native) < 1e-9:
        return [upscaler]
    # A fixed-scale model runs at its native factor; a good filter covers the rest.
    return [upscaler, StageCall("lanczos", {"scale": args.scale / native})]


def _degrade_pipeline(args: argparse.Namespace) -> list[StageCall]:
    # Real-ESRGAN's first-order order: blur, resize, noise, then JPEG last as a camera/codec would.
    stages = []
    if args.blur:
        stages.append(StageCall("degrade.blur", {"sigma": args.blur}))
    if args.downsample:
        stages.append(StageCall("degrade.downsample", {"scale": args.downsample}))
    if args.noise:
        stages.append(StageCall("degrade.noise", {"sigma": args.noise, "seed": args.seed}))
    if args.jpeg:
        stages.append(StageCall("degrade.jpeg", {"quality": args.jpeg}))
    if not stages:
        raise UsageError("nothing to do", hint="give at least one of --blur, --downsample, --noise, --jpeg")
    return stages


def _process(args: argparse.Namespace, make_stages: Callable[[], list[StageCall]], host: PluginHost) -> int:
    from tqdm import tqdm

    from remaster.cli.distributed import check_engine_options
    from remaster.pipeline.devices import describe_device
    from remaster.pipeline.remasterer import Remasterer
    from remaster.runs.local import run_items

    if check_engine_options(args):
        from remaster.cli.distributed import run_on_ray

        return run_on_ray(args, make_stages, finish=_finish, skipped_line=_skipped_line,
                          notes=lambda extras, bar: _plugin_notes(extras, bar, host))
    items = plan_outputs(collect_inputs(args.inputs), Path(args.output), args.format, name_template=args.name_template,
                         suffix=args.suffix, folder=args.output.endswith(FOLDER_SEPARATORS))
    check_writable(items, args.report)  # before the stages are resolved: a model file given as a stage is read then
    if args.skip_existing:
        for item in items:  # outputs are written atomically: one that is there is complete
            item.skipped = Path(item.target).is_file()
        if all(item.skipped for item in items):  # a finished run, resumed: no model is read at all
            if not args.quiet and not args.json:
                for item in items:
                    print(_skipped_line(item), file=sys.stderr)
            return _finish(args, items, interrupted=False)
    try:
        remasterer = Remasterer(make_stages(), pipeline_options(args), host=host)
        warn_plugin_errors(args, host)
        planned = [choice.name for choice in remasterer.precisions(8)]
        if not args.quiet and not args.json:
            print(f"remaster: {remasterer.describe()} on {describe_device(remasterer.device)}, {len(items)} image(s)",
                  file=sys.stderr)
        remasterer.prepare()  # missing weights stop the run here, before any image is read
    except KeyboardInterrupt:  # while models load: the report still says that nothing was done
        if args.report:
            write_report(Path(args.report), summarize(items, interrupted=True))
        raise
    bar = tqdm(total=len(items), unit="img", disable=args.quiet or None, leave=False, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}]")
    interrupted = False

    def started(index: int, item: BatchItem) -> None:
        bar.set_postfix_str(Path(item.source).name, refresh=False)

    def progress(index: int, fraction: float) -> None:
        bar.n = index + fraction
        bar.refresh()

    try:
        # Decoding the next images and writing finished ones overlap the network (remaster.runs.local).
        for item in run_items(remasterer, items, overwrite=args.overwrite, quality=args.quality,
                              on_start=started, progress=progress):
            if item.skipped:
                if not args.quiet and not args.json:
                    bar.write(_skipped_line(item), file=sys.stderr)
            elif item.error:
                if args.debug and item.exception is not None:
                    traceback.print_exception(item.exception)
                bar.write(f"remaster: error: {item.error}", file=sys.stderr)
            elif not args.quiet and not args.json:
                bar.write(f"{item.source} -> {item.target} ({item.seconds:.1f} s{_plugin_notes(item.extras, bar, host)}"
                          f"{_precision_note(item.extras, planned)})", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return _finish(args, items, interrupted)


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
        print(f"{done} of {len(items)} image(s) written to {args.output}" + (
            f", {summary['skipped']} skipped (already there)" if summary["skipped"] else "") + (
            f", {summary['failed']} failed" if summary["failed"] else ""), file=sys.stderr)
    if interrupted:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


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
