"""``weights``: list, fetch, import, verify and locate model weights through the weights manager."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.cli.console import warn_plugin_errors
from remaster.cli.parser import Parser, common_options

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def weights_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``weights`` command group's actions: list, fetch, import, verify, path."""
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=Parser, required=True)
    listing = actions.add_parser("list", help="every known weights file: cached or not, size, sha256, license, URL")
    common_options(listing)
    fetch = actions.add_parser("fetch", help="download weights into the cache (resumes; checked before use)")
    fetch.add_argument("name", metavar="NAME", help="weights name (see 'remaster weights list')")
    fetch.add_argument("--url", help="download from this URL instead of the official one (a mirror)")
    common_options(fetch)
    importing = actions.add_parser("import", help="copy a weights file you already have into the cache")
    importing.add_argument("file", metavar="PATH", help="the weights file")
    importing.add_argument("--name", help="which weights it is (default: recognised by sha256 or file name)")
    importing.add_argument("--replace", action="store_true",
                           help="pin this file instead of the one pinned on first use (it is still checked); "
                                "an official sha256 is never replaced")
    common_options(importing)
    verify = actions.add_parser("verify", help="check the sha256 of cached weights; bad files are quarantined")
    verify.add_argument("name", metavar="NAME", nargs="?", help="only these weights (default: all)")
    common_options(verify)
    path = actions.add_parser("path", help="print the weights folder, or where the file of NAME is")
    path.add_argument("name", metavar="NAME", nargs="?", help="weights name")
    common_options(path)


def weights(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster weights ACTION``: the weights files the host's plugins registered, in the cache."""
    from remaster.weights import get_manager

    manager = get_manager(host)
    if args.weights_command != "path":  # 'path' output is meant for scripts: keep stderr quiet too
        warn_plugin_errors(args, host)
    handler = {"list": _weights_list, "fetch": _weights_fetch, "import": _weights_import,
               "verify": _weights_verify, "path": _weights_path}[args.weights_command]
    return handler(args, manager)


def _weights_list(args: argparse.Namespace, manager: Any) -> int:
    rows = manager.status()
    if args.json:
        print(json.dumps([{"name": r.name, "plugin": r.plugin, "file": r.filename, "path": str(r.path),
                           "state": r.state, "size": r.size, "sha256": r.sha256, "pinned_sha256": r.pinned,
                           "license": r.license, "url": r.url, "description": r.description} for r in rows], indent=2))
        return 0
    if not rows:
        print("no weights are registered (install a plugin that needs some)", file=sys.stderr)
        return 0
    for row in rows:
        size = f"{row.size / 2**20:.1f} MiB" if row.size is not None else "-"
        print(f"{row.name}  [{row.plugin}]  {row.state}  {size}")
        print(f"    file: {row.filename}" + (f"  {row.description}" if row.description else ""))
        print(f"    sha256: {row.sha256_text}")
        print(f"    license: {row.license}")
        if row.url:
            print(f"    url: {row.url}")
        elif row.produced:
            print("    made offline from an installed package (no download)")
        else:
            print("    url: (none: import the file with 'remaster weights import')")
    return 0


def _weights_fetch(args: argparse.Namespace, manager: Any) -> int:
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                       file=sys.stderr, disable=args.quiet or args.json or None, desc=args.name)
        bar.update(done - bar.n)

    try:
        target = manager.fetch(args.name, url=args.url, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return _weights_done(args, manager, args.name, target)


def _weights_import(args: argparse.Namespace, manager: Any) -> int:
    target = manager.import_file(args.file, name=args.name, replace=args.replace)
    name = args.name or next(s.name for s in manager.registry if manager.folder / s.filename == target)
    return _weights_done(args, manager, name, target)


def _weights_done(args: argparse.Namespace, manager: Any, name: str, target: Path) -> int:
    if args.json:  # the file was just verified, so the expected hash (official or pinned) is its hash
        print(json.dumps({"name": name, "path": str(target), "sha256": manager.expected_sha256(name)}, indent=2))
    elif not args.quiet:
        print(f"{name}: {target}")
    return 0


def _weights_verify(args: argparse.Namespace, manager: Any) -> int:
    results = manager.verify([args.name] if args.name else None)
    if args.json:
        print(json.dumps([{"name": name, "status": status} for name, status in results], indent=2))
    elif not args.quiet:
        for name, status in results:
            rebuilt = status.endswith("quarantined") and manager.registry.get(name).producer is not None
            print(f"{name}  {status}" + ("; rebuilt from the packaged weights on the next run" if rebuilt else ""))
    # Not having every file is normal; a bad one, or a missing one the user asked about, is a failure.
    failed = any(status.endswith("quarantined") or (args.name and status == "missing") for _, status in results)
    return 1 if failed else 0


def _weights_path(args: argparse.Namespace, manager: Any) -> int:
    print(manager.path(args.name) if args.name else manager.folder)
    return 0
