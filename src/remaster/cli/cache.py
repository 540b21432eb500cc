"""``cache``: the compiled artifacts remaster built on this machine (``list``, ``remove``, ``path``); torch-free."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from remaster.cli.parser import Parser, common_options

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``cache`` command's actions: list, remove, path."""
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=Parser, required=True)
    listing = actions.add_parser("list", help="compiled artifacts: stage, input shape, precision, size, build time")
    common_options(listing)
    remove = actions.add_parser("remove", help="delete compiled artifacts (they are built again when needed)")
    chosen = remove.add_mutually_exclusive_group(required=True)
    chosen.add_argument("key", metavar="KEY", nargs="*", default=[], help="artifacts by key, or a key's first digits")
    chosen.add_argument("--all", action="store_true", help="every compiled artifact")
    common_options(remove)
    path = actions.add_parser("path", help="print the compiled-artifacts folder")
    common_options(path)


def cache(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster cache ACTION``."""
    from remaster.weights.artifacts import ARTIFACTS_DIR, ArtifactStore
    from remaster.weights.cache import cache_dir

    store = ArtifactStore(cache_dir() / ARTIFACTS_DIR)
    if args.cache_command == "path":
        print(store.root)
        return 0
    if args.cache_command == "list":
        records = store.records()
        if args.json:
            print(json.dumps([{**asdict(r), "path": str(store.path_for(r.file))} for r in records], indent=2))
            return 0
        if not records:
            print(f"no compiled artifacts in {store.root}", file=sys.stderr)
            return 0
        for r in records:
            built = datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
            print(f"{r.key[:12]}  {r.stage}  {'x'.join(map(str, r.shape))}  {r.precision}  {r.format}  "
                  f"{r.size / 2**20:.1f} MiB  built {built} in {r.build_seconds:.0f} s")
        print(f"{len(records)} artifact(s), {sum(r.size for r in records) / 2**20:.1f} MiB in {store.root}",
              file=sys.stderr)
        return 0
    if args.all:
        removed = store.remove(None)
    else:
        keys = [r.key for r in store.records() if any(r.key.startswith(k.lower()) for k in args.key)]
        unknown = [k for k in args.key if not any(r.startswith(k.lower()) for r in keys)]
        if unknown:
            print(f"remaster: no compiled artifact has the key {unknown[0]} (see 'remaster cache list')",
                  file=sys.stderr)
            return 1
        removed = store.remove(keys)
    print(f"removed {len(removed)} compiled artifact(s), {sum(r.size for r in removed) / 2**20:.1f} MiB",
          file=sys.stderr)
    return 0
