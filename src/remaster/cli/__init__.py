"""The ``remaster`` command: a thin layer that parses, calls the library and prints.

Exit codes: 0 when everything succeeded, 1 when some items failed, 2 for usage
errors, 130 when interrupted, 141 when stdout was closed early (``| head``).
Errors print as one line unless ``--debug``; so do warnings, through logging.

One module per command (``run``: upscale/run/degrade, ``listing``: stages/plugins, ``weights``, ``serve``,
``evaluate``: eval/compare, ``finetune``), registered as commands by the built-in plugin ``commands`` through
``remaster_register_commands``, the hook plugins add theirs with; ``main`` builds the parser from the registered
commands and dispatches to the one given. Planning a folder run is
the library's (:mod:`remaster.batch`); its names are re-exported here for older imports.
"""

from __future__ import annotations

from ..batch import (
    DEFAULT_NAME_TEMPLATE,
    IMAGE_SUFFIXES,
    NAME_FIELDS,
    WRITABLE_SUFFIXES,
    BatchItem,
    collect_inputs,
    plan_outputs,
)
from .main import EXIT_BROKEN_PIPE, build_parser, main, program
from .run import _degrade_pipeline, _upscale_pipeline

__all__ = ["DEFAULT_NAME_TEMPLATE", "EXIT_BROKEN_PIPE", "IMAGE_SUFFIXES", "NAME_FIELDS", "WRITABLE_SUFFIXES",
           "BatchItem", "build_parser", "collect_inputs", "main", "plan_outputs", "program"]
