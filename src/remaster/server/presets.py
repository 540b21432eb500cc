"""The editor presets ``remaster serve`` offers: :func:`available_presets`, those of the plugin host whose stages
are all installed.
"""

from __future__ import annotations

import logging
from typing import Any

from remaster.errors import UsageError
from remaster.plugin.host import PluginHost
from remaster.plugin.syntax import parse_pipeline

__all__ = ["available_presets"]

log = logging.getLogger(__name__)


def available_presets(host: PluginHost) -> list[dict[str, Any]]:
    """The presets ``GET /v1/presets`` lists: those whose stages are all installed, in dialog order.

    A preset whose pipeline names a missing stage (or whose ``requires`` does), or cannot be read, is left out,
    and so is a face variant whose plain preset is left out: the dialogs could not offer it. Each listed one
    says whether it can run now (``"ready"``): one whose ``weights`` are neither in the cache nor made offline
    has ``"ready": false`` and ``"why"``, the command that gets them, so a dialog can offer it disabled and say
    so, rather than accept a job that fails.
    """
    from remaster.weights import get_manager

    ready = {row.name for row in get_manager(host).status() if row.state in ("cached", "packaged")}
    usable: dict[str, Any] = {}
    for preset in host.presets:
        try:
            names = [call.name for call in parse_pipeline(preset.pipeline)]
        except UsageError:
            log.warning("preset %r of plugin %r has an unreadable pipeline %r", preset.name, preset.plugin,
                        preset.pipeline)
            continue
        if all(name in host.stages for name in (*names, *preset.requires)):
            usable[preset.name] = preset
    return [{**preset.as_json(), **_readiness(preset.weights, ready)} for preset in usable.values()
            if preset.faces_of is None or (preset.faces_of in usable and usable[preset.faces_of].faces_of is None)]


def _readiness(weights: tuple[str, ...], ready: set[str]) -> dict[str, Any]:
    missing = [name for name in weights if name not in ready]
    if not missing:
        return {"ready": True}
    commands = " and ".join(f"'remaster weights fetch {name}'" for name in missing)
    return {"ready": False, "why": f"weights {', '.join(missing)} are not in the server's cache: run {commands}"}
