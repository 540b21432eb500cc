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
    """``remaster: warning: <message>``: remaster's log records look like the command's own error lines; another
    library's (Pillow's, say) say whose they are and are never worded as remaster's errors."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.name == "remaster" or record.name.startswith("remaster."):
            return f"remaster: {record.levelname.lower()}: {record.message}"
        return f"remaster: warning: {record.name} says ({record.levelname.lower()}): {record.message}"


class _Repeats(logging.Filter):
    """Lets the first few records of each origin and file through and counts the rest (:data:`REPEATS_SHOWN`): a
    library that warns once per tag of a file (Pillow: thousands of lines for one TIFF) is one or two lines naming
    the file, then a count for that file."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        origin = getattr(record, "origin", None)
        if origin is None and (record.name == "remaster" or record.name.startswith("remaster.")):
            return True  # remaster's own lines each say something about one file or stage
        source = _reading_now()
        if source and not str(record.msg).startswith(f"{source}: "):
            record.msg, record.args = f"{source}: {record.getMessage()}", None
        key = (origin or f"{record.name}:{record.levelno}", source)
        count = self.seen[key] = self.seen.get(key, 0) + 1
        return count <= REPEATS_SHOWN

    def hidden(self) -> dict[str, int]:
        """Per file (``""``: none known), how many records were counted instead of shown."""
        per_file: dict[str, int] = {}
        for (_, source), count in self.seen.items():
            if count > REPEATS_SHOWN:
                per_file[source] = per_file.get(source, 0) + count - REPEATS_SHOWN
        return per_file


def _reading_now() -> str:
    from remaster.runs.reading import current_source  # standard library only: cheap at start-up

    source = current_source()
    return "" if source is None else str(source)


#: How many warnings of one origin are shown before the rest are only counted.
REPEATS_SHOWN = 2


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command: one log line, not Python's two-line dump of the source."""
    text = str(message)
    # remaster's own warnings name the file and the remedy; another library's needs its origin to make sense.
    origin = None
    if not issubclass(category, RemasterWarning) or log.isEnabledFor(logging.DEBUG):
        text = f"{text} ({category.__name__} at {filename}:{lineno})"
        origin = f"{category.__name__} at {filename}:{lineno}"
    log.warning("%s", text, extra={"origin": origin or f"{category.__name__}:{text}"})


@contextlib.contextmanager
def console_for(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs: log records and warnings go to stderr as single lines; -q leaves only errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    handler.setLevel(logging.ERROR if args.quiet else logging.DEBUG if args.debug else logging.WARNING)
    repeats = _Repeats()
    if not args.debug:
        handler.addFilter(repeats)
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
        if not args.quiet:
            for source, count in repeats.hidden().items():
                about = f"{source}: " if source else ""
                print(f"remaster: warning: {about}{count:,} more warning(s) like those above were not shown "
                      "(--debug shows every one)", file=sys.stderr)


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
