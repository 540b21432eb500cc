"""``serve``: the local HTTP service the GIMP and Krita plug-ins talk to."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.errors import UsageError

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def serve_arguments(serve: argparse.ArgumentParser) -> None:
    """The ``serve`` command's arguments: the local HTTP service the GIMP and Krita plug-ins talk to."""
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: 8765)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or vulkan[:N] (default: auto)")
    serve.add_argument("--max-pixels", type=int, metavar="N", help="largest input accepted, in pixels "
                                                                    "(default: 64,000,000)")
    serve.add_argument("--max-output-pixels", type=int, metavar="N", help="largest result allowed, in pixels")
    serve.add_argument("--max-request-bytes", type=int, metavar="N", help="largest request body, in bytes")
    serve.add_argument("--max-queue", type=int, metavar="N", help="jobs that may wait before new ones get 503")
    serve.add_argument("--allow-files", action="append", default=[], metavar="FOLDER",
                       help="a folder whose files clients may name (model files as stages, file parameters); "
                            "repeatable; by default the server opens no file a client names")
    serve.add_argument("--open", action="store_true",
                       help="open the web page in the default browser (docs/web.md)")
    serve.add_argument("--server-file", metavar="PATH",
                       help="where to write the address and token (mode 0600; default: see docs/editors.md)")


def serve(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster serve``: run the server with this host's stages and presets until interrupted."""
    from remaster.server.app import ServerConfig
    from remaster.server.app import serve as run_server
    from remaster.server.guard import is_loopback

    config = ServerConfig(host=args.host, port=args.port, allow_files=tuple(Path(f) for f in args.allow_files),
                          open_browser=args.open)
    limits = {}
    for option in ("max_pixels", "max_output_pixels", "max_request_bytes", "max_queue"):
        value = getattr(args, option)
        if value is not None:
            if value <= 0:
                raise UsageError(f"--{option.replace('_', '-')} must be positive, not {value}")
            limits[option] = value
    config.max_request_bytes = limits.pop("max_request_bytes", config.max_request_bytes)
    config.max_queue = limits.pop("max_queue", config.max_queue)
    config.options = config.options.replace(device=args.device, **limits)
    if args.server_file:
        config.server_file = Path(args.server_file).expanduser()
    if not is_loopback(args.host):
        print(f"remaster: warning: listening on {args.host}, which other machines may reach; "
              "anyone with the token can run jobs", file=sys.stderr)

    def announce(url: str, login: str) -> None:
        print(f"READY {url}", flush=True)
        if not args.quiet:
            print(f"remaster: serving on {url}; token in {config.server_file} (mode 0600); Ctrl-C stops",
                  file=sys.stderr, flush=True)
        # The page's address carries the server file's token: whoever can read this terminal can use the server.
        print(f"remaster: the web page: {login}", file=sys.stderr, flush=True)

    return run_server(config, announce=announce, host=host)
