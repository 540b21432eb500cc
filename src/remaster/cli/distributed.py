"""``--engine ray`` from the command line: its options checked, and the engine they ask for.

The planning and scheduling are :mod:`remaster.runs.ray`'s; what is printed and the exit code are the one console
loop's (:mod:`remaster.cli.folder`), so a run reads the same on either engine.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from remaster.cli.parser import pipeline_options
from remaster.errors import UsageError

if TYPE_CHECKING:
    from remaster.runs.ray.engine import RayEngine

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


def ray_engine(args: argparse.Namespace) -> RayEngine:
    """The Ray engine the options of ``args`` ask for (after :func:`check_engine_options`)."""
    from remaster.runs.ray.engine import RayEngine

    return RayEngine(pipeline_options(args), overwrite=args.overwrite, quality=args.quality, address=args.address,
                     workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                     gpus_per_worker=args.gpus_per_worker, cli_words=True, video_codec=args.video_codec,
                     crf=args.crf, encoder_preset=args.encoder_preset, resume=args.resume)
