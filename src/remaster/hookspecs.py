"""The hook specifications: defined in :mod:`remaster.plugin.hookspecs`, the torch-free plugin surface."""

from __future__ import annotations

from .plugin.hookspecs import *  # noqa: F403  (the hook functions themselves, which pluggy reads from the module)
from .plugin.hookspecs import __all__  # noqa: F401
