"""``stages`` and ``plugins``: what is installed, read from the plugin host without importing torch."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from remaster.cli.console import warn_plugin_errors

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def stages(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster stages``: every stage, by kind, with its parameters."""
    warn_plugin_errors(args, host)
    specs = list(host.stages)
    if args.json:
        print(json.dumps([spec.as_json() for spec in specs], indent=2))
        return 0
    kind = None
    for spec in specs:
        if spec.kind != kind:
            kind = spec.kind
            print(f"{kind.value}s:")
        scale = f"x{spec.info.scale:g}" if spec.info.scale_param is None else f"x<{spec.info.scale_param}>"
        print(f"  {spec.name:<24} {scale:<10} {spec.summary}  [{spec.plugin}]")
        for param in spec.params:
            print(f"      {param.describe():<44} {param.help}")
    return 0


def plugins(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster plugins``: every plugin, where it came from and what it registered (or why it was left out)."""
    if args.json:
        print(json.dumps([{"name": p.name, "distribution": p.distribution, "version": p.version,
                           "stages": p.stages, "weights": p.weights, "metrics": p.metrics, "presets": p.presets,
                           "commands": p.commands, "error": str(p.error) if p.error else None,
                           "warnings": [w.message for w in p.warnings]}
                          for p in host.plugins], indent=2))
        return 0
    for plugin in host.plugins:
        origin = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "(not from a distribution)"
        print(f"{plugin.name}  {origin}")
        if plugin.error:
            print(f"    error: {plugin.error}")
        else:
            listed = {"stages": plugin.stages, "weights": plugin.weights, "metrics": plugin.metrics,
                      "presets": plugin.presets, "commands": plugin.commands}
            if not any(listed.values()):
                print("    stages: (none)")
            for what, names in listed.items():
                if names:
                    print(f"    {what}: {', '.join(names)}")
            for warning in plugin.warnings:
                print(f"    warning: {warning.message}")
    return 0
