"""What reaches the terminal besides a command's own output: log records, warnings, plugin errors, a closed pipe."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from remaster.errors import RemasterWarning

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


log = logging.getLogger("remaster")


def warn_plugin_errors(args: argparse.Namespace, host: PluginHost) -> None:
    """One warning line per plugin left out or hook of a plugin that failed (nothing with ``--quiet``)."""
    if args.quiet:
        return
    for error in [*host.errors, *host.warnings]:
        print(f"remaster: warning: plugin {error}", file=sys.stderr)


class _LineFormatter(logging.Formatter):
    """``remaster: warning: <message>``: log records look like the command's own error lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"remaster: {record.levelname.lower()}: {record.message}"


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command: one log line, not Python's two-line dump of the source."""
    text = str(message)
    # remaster's own warnings name the file and the remedy; another library's needs its origin to make sense.
    if not issubclass(category, RemasterWarning) or log.isEnabledFor(logging.DEBUG):
        text = f"{text} ({category.__name__} at {filename}:{lineno})"
    log.warning("%s", text)


@contextlib.contextmanager
def console_for(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs: log records and warnings go to stderr as single lines; -q leaves only errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    handler.setLevel(logging.ERROR if args.quiet else logging.DEBUG if args.debug else logging.WARNING)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if args.debug:
        root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():  # restores the caller's warning machinery (main is also called in-process)
            warnings.showwarning = _show_warning
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def stdout_to_devnull() -> None:
    """After a closed pipe: Python's recipe (docs of ``signal``, "Note on SIGPIPE").

    Pointing stdout at devnull keeps the flush at interpreter exit from failing a second time with an
    "Exception ignored" message.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in-process): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
