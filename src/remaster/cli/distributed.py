"""``--engine ray``: the console side of a distributed folder run (progress, per-item lines, the closing report).

The planning and scheduling are :mod:`remaster.runs.ray`'s; what is printed and the exit code are those of the
local loop (:func:`remaster.cli.run._finish`), so a run reads the same on either engine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from remaster.cli.parser import pipeline_options
from remaster.errors import UsageError
from remaster.plugin.syntax import StageCall
from remaster.runs.plan import BatchItem, summarize, write_report

_RAY_ONLY = (("address", None), ("workers", None), ("gpus_per_worker", 0.0), ("cpus_per_worker", 1.0))


def check_engine_options(args: argparse.Namespace) -> bool:
    """Whether the run goes to Ray; refuses Ray's options on a local run and sizes that cannot be."""
    ray = getattr(args, "engine", "local") == "ray"
    if not ray:
        given = [name for name, default in _RAY_ONLY if getattr(args, name, default) != default]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise UsageError(f"{option} is for distributed runs", hint="add --engine ray, or leave it out")
        return False
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    if args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
        raise UsageError("--gpus-per-worker must be 0 or more and --cpus-per-worker more than 0")
    return True


class FinishRun(Protocol):
    """The local loop's closing lines, report and exit code (``remaster.cli.run._finish``)."""

    def __call__(self, args: argparse.Namespace, items: list[BatchItem], interrupted: bool) -> int: ...


def run_on_ray(args: argparse.Namespace, make_stages: Callable[[], list[StageCall]], *,
               finish: FinishRun,
               skipped_line: Callable[[BatchItem], str], notes: Callable[[dict[str, Any], Any], str]) -> int:
    """Plan as a local run, run the items on Ray workers, report as a local run; returns the exit code.

    ``finish``, ``skipped_line`` and ``notes`` are the local loop's own (passed in, so that the two modules do not
    import each other): the closing lines, report and exit code, the line of a skipped item, plugins' notes.
    """
    from tqdm import tqdm

    from remaster.runs.ray import execute, make_spec, plan_run
    from remaster.runs.ray.cluster import connected

    plan = plan_run(args.inputs, args.output, fmt=args.format, name_template=args.name_template, suffix=args.suffix,
                    skip_existing=args.skip_existing, report=args.report)
    items = plan.items
    talk = not args.quiet and not args.json
    if talk:
        for item in items:
            if item.skipped:
                print(skipped_line(item), file=sys.stderr)
    if all(item.skipped for item in items):  # a finished run, resumed: no cluster is started at all
        return finish(args, items, interrupted=False)
    spec = make_spec(make_stages(), pipeline_options(args), overwrite=args.overwrite, quality=args.quality,
                     cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker)
    skipped = sum(item.skipped for item in items)
    bar = tqdm(total=len(items), initial=skipped, unit="img", disable=args.quiet or None, leave=False,
               file=sys.stderr, dynamic_ncols=True)
    failed = 0

    def started(worker: dict[str, Any]) -> None:
        if talk:
            bar.write(f"remaster: {worker['describe']} on {worker['device']} in each Ray worker, "
                      f"{len(items) - skipped} image(s) to do", file=sys.stderr)

    def finished(item: BatchItem) -> None:
        nonlocal failed
        bar.update(1)
        if item.error:
            failed += 1
            bar.set_postfix_str(f"{failed} failed", refresh=False)
            bar.write(f"remaster: error: {item.error}", file=sys.stderr)
        elif talk:
            bar.write(f"{item.source} -> {item.target} ({item.seconds:.1f} s{notes(item.extras, bar)})",
                      file=sys.stderr)

    try:
        with connected(args.address) as ray:
            interrupted = execute(plan, spec, ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                                  gpus_per_worker=args.gpus_per_worker, report=args.report, on_item=finished,
                                  on_start=started)
    except KeyboardInterrupt:  # while the cluster starts or the workers load: the report says what was done
        bar.close()
        if args.report:
            write_report(Path(args.report), summarize(items, interrupted=True))
        raise
    finally:
        bar.close()
    return finish(args, items, interrupted)
