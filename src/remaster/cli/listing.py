"""``stages`` and ``plugins``: what is installed, read from the plugin host without importing torch."""

from __future__ import annotations

import argparse
import json

from .console import _warn_plugin_errors


def _list_stages(args: argparse.Namespace) -> int:
    from ..plugins import get_host

    host = get_host()
    _warn_plugin_errors(args)
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


def _list_plugins(args: argparse.Namespace) -> int:
    from ..plugins import get_host

    host = get_host()
    if args.json:
        print(json.dumps([{"name": p.name, "distribution": p.distribution, "version": p.version,
                           "stages": p.stages, "weights": p.weights, "metrics": p.metrics, "error": str(p.error) if p.error else None}
                          for p in host.plugins], indent=2))
        return 0
    for plugin in host.plugins:
        origin = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "(not from a distribution)"
        print(f"{plugin.name}  {origin}")
        if plugin.error:
            print(f"    error: {plugin.error}")
        else:
            if plugin.stages or not (plugin.weights or plugin.metrics):
                print(f"    stages: {', '.join(plugin.stages) or '(none)'}")
            if plugin.weights:
                print(f"    weights: {', '.join(plugin.weights)}")
            if plugin.metrics:
                print(f"    metrics: {', '.join(plugin.metrics)}")
            for warning in plugin.warnings:
                print(f"    warning: {warning.message}")
    return 0
