"""The parser of every command, the dispatch, and what a failure prints and returns."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING, Any, Sequence

from .. import __version__
from ..errors import RemasterError
from .console import _console, _stdout_to_devnull
from .evaluate import _compare, _compare_parser, _eval, _eval_parser
from .finetune import _finetune, _finetune_parser
from .listing import _list_plugins, _list_stages
from .parser import _Parser, _common, _run_options
from .run import _degrade_pipeline, _process, _upscale_pipeline
from .serve import _serve, _serve_parser
from .weights import _weights, _weights_parser

if TYPE_CHECKING:
    from ..plugins import PluginHost


#: Exit status when the reader of stdout went away (``remaster stages | head -1``): 128 + SIGPIPE, what a
#: shell reports for the standard tools, which SIGPIPE ends.
EXIT_BROKEN_PIPE = 141


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``remaster`` command, with the options plugins add (``remaster_add_options``).

    Args:
        host: The plugins asked for options; by default the process-wide host.
    """
    parser = _Parser(prog="remaster", description="Restore and upscale images.")
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    parser.set_defaults(quiet=False, json=False, debug=False)
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    upscale = commands.add_parser("upscale", help="upscale images (default model: the default pipeline's upscaler)")
    upscale.add_argument("--model", help="upscaler stage name (see 'remaster stages')")
    upscale.add_argument("--scale", type=float, help="output scale; resampled from the model's native scale if different")
    _run_options(upscale)

    run = commands.add_parser("run", help='run any pipeline, e.g. "degrade.jpeg(quality=30) | bicubic(scale=2)"')
    run.add_argument("pipeline", help="stages separated by '|'")
    _run_options(run)

    degrade = commands.add_parser("degrade", help="make images worse on purpose (training/evaluation pairs)")
    degrade.add_argument("--blur", type=float, metavar="SIGMA", help="Gaussian blur sigma in pixels")
    degrade.add_argument("--downsample", type=float, metavar="F", help="downsample factor, e.g. 0.25")
    degrade.add_argument("--noise", type=float, metavar="SIGMA", help="Gaussian noise sigma in 8-bit units")
    degrade.add_argument("--jpeg", type=int, metavar="Q", help="JPEG quality 1-100")
    degrade.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible)")
    _run_options(degrade)

    stages = commands.add_parser("stages", help="list every stage with its kind, parameters and defaults")
    _common(stages)
    plugins = commands.add_parser("plugins", help="list plugins with their versions and stages")
    _common(plugins)
    _weights_parser(commands)
    _serve_parser(commands)
    _eval_parser(commands)
    _compare_parser(commands)
    _finetune_parser(commands)
    _plugin_options(commands, host)
    return parser


def _plugin_options(commands: Any, host: PluginHost | None) -> None:
    """Each command's options from plugins, after remaster's own (a clash is the plugin's, and skipped)."""
    from ..plugins import get_host

    host = host or get_host()
    for name, command in commands.choices.items():
        host.add_options(name, command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``remaster`` command; returns the exit code."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        with _console(args):
            code = _command(parser, args)
            sys.stdout.flush()  # a short output reaches a closed pipe only here
        return code
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as the standard tools do
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    except RemasterError as exc:
        if debug:
            traceback.print_exc()
        print(f"remaster: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: still one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"remaster: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the command ``args`` name; returns its exit code."""
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "stages":
        return _list_stages(args)
    if args.command == "plugins":
        return _list_plugins(args)
    if args.command == "weights":
        return _weights(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "finetune":
        return _finetune(args)
    if args.command == "upscale":
        return _process(args, lambda: _upscale_pipeline(args))
    if args.command == "degrade":
        return _process(args, lambda: _degrade_pipeline(args))
    from ..pipeline import parse_pipeline

    return _process(args, lambda: parse_pipeline(args.pipeline))
