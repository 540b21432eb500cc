"""Hook specifications: the calls a remaster plugin can answer.

A plugin is a module (or object) with functions marked ``@remaster.hookimpl``
and named after the specs below, published under the ``remaster`` entry-point
group. Registration goes through a ``register`` callback so that the host can
validate each item, attribute it to its plugin and reject duplicates. An
implementation may accept fewer arguments than the spec lists (pluggy allows
it), which keeps old plugins working when a hook grows.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from .stage import StageSpec

__all__ = ["PROJECT_NAME", "PLUGIN_API_VERSION", "hookspec", "hookimpl", "remaster_register_stages"]

#: pluggy project name and entry-point group.
PROJECT_NAME = "remaster"

#: Bumped when a hook changes incompatibly. Plugins may check it.
PLUGIN_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    """Register stage specs by calling ``register(spec)`` once per stage.

    Must be cheap: import no model code, build no network, read no weights and
    touch no network. The spec's ``factory`` is imported when a pipeline first
    uses the stage.
    """
