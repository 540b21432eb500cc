"""The markers a plugin module needs, and nothing else (in the spirit of tox's ``tox.plugin``).

``hookimpl`` marks a plugin's hook implementations; ``NAME`` is the pluggy
project name and the entry-point group plugins are published under.
"""

from __future__ import annotations

import pluggy

__all__ = ["NAME", "PROJECT_NAME", "PLUGIN_API_VERSION", "hookimpl", "hookspec"]

#: pluggy project name and entry-point group.
NAME = "remaster"
PROJECT_NAME = NAME

#: Bumped when a hook or a spec type changes incompatibly; plugins may check it.
#: 2: ``remaster.plugin`` is the torch-free surface; precisions are named as strings (``"fp32"``, ``"bf16"``,
#: ``"fp16"``; torch dtypes are still accepted); factories may be a :class:`~remaster.plugin.Ref` with bound arguments.
#: 3: ``Stage.prepare(ctx)`` only (API 1's ``prepare(device, dtype)`` is no longer called); the plugin host is
#: ``remaster.plugin.host``; the shims ``remaster.registry``, ``remaster.hookspecs``, ``remaster.metrics.registry``
#: and ``remaster.weights.specs`` are gone (their names live in ``remaster.plugin``).
PLUGIN_API_VERSION = 3

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)
