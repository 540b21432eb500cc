"""The parser built from the registered commands, the dispatch, and what a failure prints and returns."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import NoReturn

from remaster import __version__
from remaster.cli import commands as own_commands
from remaster.cli import hooks
from remaster.cli.console import console_for, stdout_to_devnull
from remaster.cli.parser import Parser, common_options
from remaster.errors import RemasterError
from remaster.plugin.host import PluginHost, get_host

#: Exit status when the reader of stdout went away (``remaster stages | head -1``): 128 + SIGPIPE, what a
#: shell reports for the standard tools, which SIGPIPE ends.
EXIT_BROKEN_PIPE = 141


def cli_host(host: PluginHost | None = None) -> PluginHost:
    """``host`` (default: the process-wide one), loaded, with remaster's own commands registered in it.

    The commands come from the built-in plugin :mod:`remaster.cli.commands`, which joins the host's built-ins
    so that it loads before any installed plugin (or is added now to a host someone loaded already).

    Raises:
        PluginError: remaster's own commands could not be registered (an installed plugin took one of their names
            in a host loaded before the CLI asked).
    """
    if host is None:
        host = get_host(builtins=(own_commands,))
    else:
        host.ensure_loaded()
        host.add_builtin(own_commands)
    info = next(p for p in host.plugins if p.name == own_commands.PLUGIN)
    if info.error is not None:
        raise info.error
    return host


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``remaster`` command: every registered command, with the options plugins add.

    Commands come from ``remaster_register_commands`` (remaster's own first), options from
    ``remaster_add_options``.

    Args:
        host: The plugins asked for commands and options; by default the process-wide host.
    """
    host = cli_host(host)
    parser = Parser(prog="remaster", description="Restore and upscale images.")
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    parser.set_defaults(quiet=False, json=False, debug=False)
    common_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in host.commands:
        # The command's arguments are added once, to a parser of their own: one that fails leaves no half-made
        # subcommand behind; the subcommand then takes them over as its parent's.
        own = Parser(prog=f"remaster {command.name}", add_help=False)
        if hooks.command_arguments(host, command, own, common=common_options):
            commands.add_parser(command.name, help=command.help, description=command.description or command.help,
                                parents=[own])
    for name, subparser in commands.choices.items():
        hooks.add_options(host, name, subparser)
    return parser


def program() -> NoReturn:
    """The ``remaster`` program (its console script, ``python -m remaster``): :func:`main`, then a quick exit.

    A process that imported torch (and spandrel, torchvision) spends over half a second tearing its modules down
    when it exits, after the work is done: every output is written atomically and synced, the report too. So once
    stdout, stderr and the log handlers are flushed the process ends at once (``os._exit``), unless something still
    needs the orderly exit: a Ray connection (its shutdown runs at exit) or a thread that is not a daemon.
    :func:`main` itself returns normally, for callers in the same process.
    """
    code = main()
    if "ray" in sys.modules or any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away after all: as main() reports it
        code = EXIT_BROKEN_PIPE
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``remaster`` command; returns the exit code.

    SIGTERM (a service manager stopping a run, ``kill``) is handled as Ctrl-C is: outputs already written are
    kept, the report is written, temporary files are removed, exit 130. ``remaster serve`` installs its own.
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    # OpenCV's own warnings (several lines each, when it declines a file) are not the command's voice: the error
    # line says what happened. Set before OpenCV is first imported; --debug keeps them.
    if not debug:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        host = cli_host()
        parser = build_parser(host)
        args = parser.parse_args(argv)
        with console_for(args):
            code = _command(parser, args, host)
            sys.stdout.flush()  # a short output reaches a closed pipe only here
        return code
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as the standard tools do
        stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    except RemasterError as exc:
        if debug:
            traceback.print_exc()
        print(f"remaster: error: {exc.for_cli()}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: still one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"remaster: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace, host: PluginHost) -> int:
    """Run the command ``args`` name; returns its exit code."""
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return hooks.run_command(host, host.commands.get(args.command), args)
