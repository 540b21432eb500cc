"""What several commands share in their arguments: the parser class, the common and run options, ``--tile``."""

from __future__ import annotations

import argparse
from typing import NoReturn

from remaster.errors import UsageError
from remaster.pipeline.options import PipelineOptions


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors, as one line with exit code 2
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command understands (accepted before or after the command name; the CLI adds them to each)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable JSON summary on stdout")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")


def run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output file (one input) or folder")
    parser.add_argument("--tile", default="auto", metavar="N|auto",
                        help="tile size in pixels, 'auto' (tile only when memory needs it) or 0 (never)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda, cuda:N, vulkan or vulkan:N (network stages through ncnn on any "
                             "Vulkan GPU; auto never picks a CPU Vulkan); default: auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="compute precision; fp32 gives exact results (default: auto)")
    parser.add_argument("--half-weights", action="store_true",
                        help="network stages hold their weights in fp16/bf16 when they run in it, instead of "
                             "float32 weights under autocast (docs/usage.md)")
    parser.add_argument("--compile", choices=["auto", "on", "off"],
                        help="run network stages compiled for this machine: auto uses compiled forms already "
                             "cached and builds missing ones in the background for later runs; on builds them "
                             "first; off never compiles (default: auto; docs/compile.md)")
    parser.add_argument("--compile-backend", metavar="NAME",
                        help="inductor (default), export (no native code) or a torch.compile backend")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs, even the input itself")
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted run (the same command again): outputs already there are "
                               "left as they are, an unfinished video goes on from its first unfinished segment")
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality 1-100 (default 95)")
    parser.add_argument("--format", choices=["png", "jpg", "webp", "tif"],
                        help="output format for folder runs (default: the input's, or PNG)")
    parser.add_argument("--suffix", default="", metavar="TEXT",
                        help="added to each output name in a folder: --suffix _x4 writes a.jpg as a_x4.jpg")
    parser.add_argument("--name-template", metavar="TEMPLATE",
                        help="name of each output in a folder, e.g. '{stem}_x4.{ext}'; fields: {stem} (input name "
                             "without extension), {ext} (output format), {suffix} (--suffix)")
    parser.add_argument("--max-pixels", type=int, metavar="N", help="largest input accepted, in pixels")
    parser.add_argument("--max-output-pixels", type=int, metavar="N", help="largest output allowed, in pixels")
    parser.add_argument("--report", metavar="FILE", help="write a JSON report of every item to FILE")
    videos = parser.add_argument_group("videos (pip install 'remaster[video]'; docs/video.md)")
    videos.add_argument("--video-codec", metavar="NAME",
                        help="video encoder (default: libx264 for 8-bit sources, libx265 for deeper ones, "
                             "libvpx-vp9 into .webm)")
    videos.add_argument("--crf", type=int, metavar="N", help="constant rate factor of the encoder (default 18)")
    videos.add_argument("--encoder-preset", metavar="NAME", help="the encoder's speed preset (default: medium)")
    _engine_options(parser)


def _engine_options(parser: argparse.ArgumentParser) -> None:
    """Where the items run: this process, or a Ray cluster (docs/distributed.md)."""
    group = parser.add_argument_group("distributed runs (--engine ray, pip install 'remaster[ray]')")
    group.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="run the items in this process (local, default) or on a Ray cluster (ray)")
    group.add_argument("--address", metavar="ADDR",
                       help="Ray cluster: 'auto' (this machine's, after ray start) or ray://HEAD:10001 "
                            "(default: a local cluster on 127.0.0.1)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="Ray workers (default: one per GPU with --gpus-per-worker, else cores / --cpus-per-worker)")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                       help="GPUs each Ray worker reserves (default 0: CPU workers)")
    group.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                       help="CPUs each Ray worker reserves, and its threads (default 1)")


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """The :class:`PipelineOptions` the run options of ``args`` ask for (those a command does not have keep their
    defaults): the one place the CLI turns its flags into pipeline options."""
    given = {name: getattr(args, name) for name in ("device", "precision", "max_pixels", "half_weights", "compile",
                                                    "compile_backend") if getattr(args, name, None) is not None}
    if getattr(args, "tile", None) is not None:
        given["tile"] = parse_tile(args.tile)
    if getattr(args, "max_output_pixels", None):
        given["max_output_pixels"] = args.max_output_pixels
    return PipelineOptions(**given)


def parse_tile(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--tile must be 'auto' or a number of pixels, not {text!r}") from None
    if value < 0:
        raise UsageError("--tile must not be negative")
    return value
