"""``upscale``, ``run`` and ``degrade``: the stages each asks for, run over the planned folder (``cli.folder``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from remaster.cli import hooks
from remaster.cli.folder import run_folder
from remaster.cli.parser import run_options
from remaster.errors import UsageError
from remaster.plugin.syntax import StageCall, parse_pipeline

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def upscale_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upscale`` command's arguments."""
    parser.add_argument("--model", metavar="NAME|FILE",
                        help="upscaler stage name (see 'remaster stages') or model file (default: realesrgan-x4plus, "
                             "or lanczos when remaster-realesrgan is not installed)")
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
    return run_folder(args, lambda: _upscale_pipeline(args, host), host)


def run(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster run``: the pipeline given."""
    return run_folder(args, lambda: parse_pipeline(args.pipeline), host)


def degrade(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster degrade``: the degradations asked for, in a fixed order."""
    return run_folder(args, lambda: _degrade_pipeline(args), host)


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
