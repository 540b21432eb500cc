"""The ``remaster`` command: a thin layer that parses, calls the library and prints.

Exit codes: 0 when everything succeeded, 1 when some items failed, 2 for usage
errors, 130 when interrupted, 141 when stdout was closed early (``| head``).
Errors print as one line unless ``--debug``; so do warnings, through logging.

One module per command (``run``: upscale/run/degrade, ``listing``: stages/plugins, ``weights``, ``serve``,
``evaluate``: eval/compare, ``finetune``), registered as commands by the built-in plugin ``commands`` through
``remaster_register_commands``, the hook plugins add theirs with; ``main`` builds the parser from the registered
commands and dispatches to the one given; ``hooks`` calls the plugins' CLI hooks.
"""

from __future__ import annotations

from remaster.cli.main import EXIT_BROKEN_PIPE, build_parser, main, program

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "main", "program"]
