"""The ``remaster`` command: a thin layer that parses, calls the library and prints.

Exit codes: 0 when everything succeeded, 1 when some items failed, 2 for usage
errors, 130 when interrupted, 141 when stdout was closed early (``| head``).
Errors print as one line unless ``--debug``; so do warnings, through logging.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import string
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from . import __version__
from .errors import OutputError, RemasterError, RemasterWarning, UsageError

if TYPE_CHECKING:
    from .plugins import PluginHost

log = logging.getLogger("remaster")

#: Extensions picked up when a folder is given as input.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif"}
#: Extensions remaster can write; other inputs are written as PNG.
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
#: How each output in a folder is named unless ``--name-template`` says otherwise.
DEFAULT_NAME_TEMPLATE = "{stem}{suffix}.{ext}"
#: The fields a name template may use.
NAME_FIELDS = ("stem", "ext", "suffix")
#: Exit status when the reader of stdout went away (``remaster stages | head -1``): 128 + SIGPIPE, what a
#: shell reports for the standard tools, which SIGPIPE ends.
EXIT_BROKEN_PIPE = 141
#: What ends an -o that is meant as a folder, whatever its extension (``-o out.png/``).
_SEPARATORS = tuple(sep for sep in {"/", os.sep, os.altsep} if sep)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors, as one line with exit code 2
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _common(parser: argparse.ArgumentParser) -> None:
    """Options every command understands (accepted before or after the command name)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable JSON summary on stdout")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output file (one input) or folder")
    parser.add_argument("--tile", default="auto", metavar="N|auto",
                        help="tile size in pixels, 'auto' (tile only when memory needs it) or 0 (never)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="compute precision; fp32 gives exact results (default: auto)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs, even the input itself")
    existing.add_argument("--skip-existing", action="store_true",
                          help="leave outputs that already exist as they are (run the same command again to resume)")
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
    _common(parser)


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``remaster`` command, with the options plugins add (``remaster_add_options``).

    Args:
        host: The plugins asked for options; by default the process-wide host.
    """
    parser = _Parser(prog="remaster", description="Restore and upscale images.")
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    parser.set_defaults(quiet=False, json=False, debug=False)
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    upscale = commands.add_parser("upscale", help="upscale images (default model: the default pipeline's upscaler)")
    upscale.add_argument("--model", help="upscaler stage name (see 'remaster stages')")
    upscale.add_argument("--scale", type=float, help="output scale; resampled from the model's native scale if different")
    _run_options(upscale)

    run = commands.add_parser("run", help='run any pipeline, e.g. "degrade.jpeg(quality=30) | bicubic(scale=2)"')
    run.add_argument("pipeline", help="stages separated by '|'")
    _run_options(run)

    degrade = commands.add_parser("degrade", help="make images worse on purpose (training/evaluation pairs)")
    degrade.add_argument("--blur", type=float, metavar="SIGMA", help="Gaussian blur sigma in pixels")
    degrade.add_argument("--downsample", type=float, metavar="F", help="downsample factor, e.g. 0.25")
    degrade.add_argument("--noise", type=float, metavar="SIGMA", help="Gaussian noise sigma in 8-bit units")
    degrade.add_argument("--jpeg", type=int, metavar="Q", help="JPEG quality 1-100")
    degrade.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible)")
    _run_options(degrade)

    stages = commands.add_parser("stages", help="list every stage with its kind, parameters and defaults")
    _common(stages)
    plugins = commands.add_parser("plugins", help="list plugins with their versions and stages")
    _common(plugins)
    _weights_parser(commands)
    _serve_parser(commands)
    _eval_parser(commands)
    _compare_parser(commands)
    _finetune_parser(commands)
    _plugin_options(commands, host)
    return parser


def _plugin_options(commands: Any, host: PluginHost | None) -> None:
    """Each command's options from plugins, after remaster's own (a clash is the plugin's, and skipped)."""
    from .plugins import get_host

    host = host or get_host()
    for name, command in commands.choices.items():
        host.add_options(name, command)


def _weights_parser(commands: Any) -> None:
    """The ``weights`` command group: list, fetch, import, verify, path."""
    weights = commands.add_parser("weights", help="list, download, import and check model weights")
    _common(weights)
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=_Parser, required=True)
    listing = actions.add_parser("list", help="every known weights file: cached or not, size, sha256, license, URL")
    _common(listing)
    fetch = actions.add_parser("fetch", help="download weights into the cache (resumes; checked before use)")
    fetch.add_argument("name", metavar="NAME", help="weights name (see 'remaster weights list')")
    fetch.add_argument("--url", help="download from this URL instead of the official one (a mirror)")
    _common(fetch)
    importing = actions.add_parser("import", help="copy a weights file you already have into the cache")
    importing.add_argument("file", metavar="PATH", help="the weights file")
    importing.add_argument("--name", help="which weights it is (default: recognised by sha256 or file name)")
    importing.add_argument("--replace", action="store_true",
                           help="pin this file instead of the one pinned on first use (it is still checked); "
                                "an official sha256 is never replaced")
    _common(importing)
    verify = actions.add_parser("verify", help="check the sha256 of cached weights; bad files are quarantined")
    verify.add_argument("name", metavar="NAME", nargs="?", help="only these weights (default: all)")
    _common(verify)
    path = actions.add_parser("path", help="print the weights folder, or where the file of NAME is")
    path.add_argument("name", metavar="NAME", nargs="?", help="weights name")
    _common(path)



def _serve_parser(commands: Any) -> None:
    """The ``serve`` command: the local HTTP service the GIMP and Krita plug-ins talk to."""
    serve = commands.add_parser("serve", help="run the local HTTP service for the GIMP/Krita plug-ins "
                                              "(docs/editors.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: 8765)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    serve.add_argument("--max-pixels", type=int, metavar="N", help="largest input accepted, in pixels "
                                                                    "(default: 64,000,000)")
    serve.add_argument("--max-output-pixels", type=int, metavar="N", help="largest result allowed, in pixels")
    serve.add_argument("--max-request-bytes", type=int, metavar="N", help="largest request body, in bytes")
    serve.add_argument("--max-queue", type=int, metavar="N", help="jobs that may wait before new ones get 503")
    serve.add_argument("--server-file", metavar="PATH",
                       help="where to write the address and token (mode 0600; default: see docs/editors.md)")
    _common(serve)


def _serve(args: argparse.Namespace) -> int:
    from .server import ServerConfig, is_loopback, serve

    config = ServerConfig(host=args.host, port=args.port, device=args.device)
    for option in ("max_pixels", "max_output_pixels", "max_request_bytes", "max_queue"):
        value = getattr(args, option)
        if value is not None:
            if value <= 0:
                raise UsageError(f"--{option.replace('_', '-')} must be positive, not {value}")
            setattr(config, option, value)
    if args.server_file:
        config.server_file = Path(args.server_file).expanduser()
    if not is_loopback(args.host):
        print(f"remaster: warning: listening on {args.host}, which other machines may reach; "
              "anyone with the token can run jobs", file=sys.stderr)

    def announce(url: str) -> None:
        print(f"READY {url}", flush=True)
        if not args.quiet:
            print(f"remaster: serving on {url}; token in {config.server_file} (mode 0600); Ctrl-C stops",
                  file=sys.stderr, flush=True)

    return serve(config, announce=announce)


def _eval_parser(commands: Any) -> None:
    """The ``eval`` command: degrade HR images, upscale them with each candidate, score, write a report."""
    from .evaluation import DEFAULT_DEGRADE, DEFAULT_METRICS

    evaluate = commands.add_parser("eval", help="degrade HR images, upscale them with each candidate, score and "
                                                "compare (report.md/csv/json and comparison sheets)")
    evaluate.add_argument("--hr", nargs="+", required=True, metavar="HR",
                          help="high-resolution image files or folders (the originals)")
    evaluate.add_argument("--degrade", default=DEFAULT_DEGRADE, metavar="PIPELINE",
                          help=f"how to make the low-resolution inputs (default: \"{DEFAULT_DEGRADE}\")")
    evaluate.add_argument("--candidates", required=True, metavar="LIST",
                          help="comma-separated upscalers, e.g. \"nearest,bicubic,lanczos,realesrgan-x4plus\"; "
                               "each gets scale=F, the inverse of the degradation's factor")
    evaluate.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="folder for the report")
    evaluate.add_argument("--metrics", default=",".join(DEFAULT_METRICS), metavar="LIST",
                          help=f"comma-separated metrics, e.g. psnr,ssim,lpips(net=vgg) "
                               f"(default: {','.join(DEFAULT_METRICS)}; see docs/metrics.md)")
    evaluate.add_argument("--crop-border", type=int, default=0, metavar="N",
                          help="pixels cut from each edge before scoring (SR papers: the scale factor)")
    evaluate.add_argument("--y-channel", action="store_true",
                          help="PSNR/SSIM on BT.601 luma, as SR papers report them")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    evaluate.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                          help="compute precision of the candidates (default: auto)")
    evaluate.add_argument("--tile", default="auto", metavar="N|auto", help="tile size for the candidates")
    evaluate.add_argument("--no-sheets", action="store_true", help="do not draw the comparison sheets")
    evaluate.add_argument("--save-images", action="store_true",
                          help="also write every degraded input and output under REPORT_DIR/images/")
    _common(evaluate)


def _compare_parser(commands: Any) -> None:
    """The ``compare`` command: score one image against a reference."""
    from .evaluation import COMPARE_METRICS

    compare = commands.add_parser("compare", help="score image A against the reference B (PSNR, SSIM, ...)")
    compare.add_argument("a", metavar="A", help="the image to score (e.g. a restored one)")
    compare.add_argument("b", metavar="B", help="the reference (e.g. the original)")
    compare.add_argument("--metrics", default=",".join(COMPARE_METRICS), metavar="LIST",
                         help=f"comma-separated metrics (default: {','.join(COMPARE_METRICS)}); "
                              "no-reference ones are given for each image")
    compare.add_argument("--crop-border", type=int, default=0, metavar="N", help="pixels cut from each edge")
    compare.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 luma")
    _common(compare)


def _finetune_parser(commands: Any) -> None:
    """The ``finetune`` command: transfer learning on a folder of the user's images (docs/finetuning.md)."""
    tune = commands.add_parser("finetune", help="fine-tune a Real-ESRGAN-family model on your own images "
                                                "(RUN_DIR/best.safetensors is then a --model)")
    tune.add_argument("--model", required=True, metavar="NAME|PATH",
                      help="stage name (e.g. realesr-animevideov3, realesrgan-x4plus) or model file to start from")
    tune.add_argument("--data", required=True, metavar="HR_DIR", help="folder of high-resolution training images")
    tune.add_argument("--val", metavar="DIR", help="folder of held-out HR images for validation "
                                                   "(default: centre crops of the training images)")
    tune.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="folder for checkpoints and logs")
    tune.add_argument("--freeze", default="auto", metavar="SPEC",
                      help="layers kept fixed: auto, none, N (first N blocks/convolutions) or name patterns")
    tune.add_argument("--steps", type=int, default=1000, help="total optimisation steps (default 1000)")
    tune.add_argument("--batch", type=int, default=4, help="patches per step (default 4)")
    tune.add_argument("--patch", type=int, default=128, help="HR patch size in pixels (default 128)")
    tune.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    tune.add_argument("--losses", default="l1=1,perceptual=1,gan=0.1", metavar="SPEC",
                      help="loss weights; perceptual needs the torchvision-vgg19 weights, gan=0 turns the GAN off "
                           "(default: \"l1=1,perceptual=1,gan=0.1\")")
    tune.add_argument("--degradation", default="realesrgan", metavar="KIND",
                      help="how LR inputs are made: realesrgan (default), simple (bicubic) or paired:LR_DIR")
    tune.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved generator; 0: off")
    tune.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR exactly where it stopped")
    tune.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    tune.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                      help="training precision (auto: fp16 on CUDA, bf16 on AMX CPUs, else fp32)")
    tune.add_argument("--config", metavar="FILE", help="JSON/TOML file whose 'degradation' table overrides "
                                                       "Real-ESRGAN's probabilities and ranges")
    tune.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    tune.add_argument("--val-every", type=int, default=100, metavar="K",
                      help="validate and save a checkpoint every K steps (default 100)")
    tune.add_argument("--val-size", type=int, default=256, metavar="PX",
                      help="validation images are centre-cropped to at most PX pixels (default 256)")
    tune.add_argument("--log-every", type=int, default=10, metavar="K",
                      help="write the losses to RUN_DIR/log.jsonl every K steps (default 10)")
    _common(tune)


def _finetune(args: argparse.Namespace) -> int:
    from .training import FinetuneOptions, finetune

    _warn_plugin_errors(args)
    options = FinetuneOptions(
        model=args.model, data=args.data, val=args.val, output=args.output, freeze=args.freeze, steps=args.steps,
        batch=args.batch, patch=args.patch, lr=args.lr, losses=args.losses, degradation=args.degradation,
        ema=args.ema, resume=args.resume, device=args.device, precision=args.precision, config=args.config,
        seed=args.seed, val_every=args.val_every, val_size=args.val_size, log_every=args.log_every,
        quiet=args.quiet or args.json)
    result = finetune(options)
    summary = {"run_dir": str(result.run_dir), "step": result.step, "best_step": result.best_step,
               "best_val_psnr": result.best_psnr, "initial": result.initial, "final": result.final,
               "trainable_parameters": result.trainable, "frozen_parameters": result.frozen,
               "seconds": round(result.seconds, 1), "steps_per_second": round(result.steps_per_second, 3),
               "skipped": [{"path": str(item.path), "reason": item.reason} for item in result.skipped]}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        before, after = result.initial or {}, result.final or {}
        print(f"validation PSNR {before.get('val_psnr', float('nan')):.2f} -> {after.get('val_psnr', float('nan')):.2f}"
              f" dB, SSIM {before.get('val_ssim', float('nan')):.4f} -> {after.get('val_ssim', float('nan')):.4f}; "
              f"best at step {result.best_step}: {result.run_dir / 'best.safetensors'} "
              f"({result.steps_per_second:.2f} steps/s)"
              + (f"; {len(result.skipped)} unreadable file(s) left out" if result.skipped else ""), file=sys.stderr)
    return 0


@dataclass
class _Item:
    source: Path
    target: Path
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # --skip-existing found the output already there: not written again, not a failure

    def as_json(self) -> dict[str, Any]:
        """One report entry; what stages reported (e.g. ``faces``) follows, never replacing these keys."""
        entry = {"input": str(self.source), "output": str(self.target) if self.ok or self.skipped else None,
                 "ok": self.ok, "skipped": self.skipped, "error": self.error, "seconds": round(self.seconds, 3)}
        return {**entry, **{key: value for key, value in self.extras.items() if key not in entry}}


def collect_inputs(inputs: Sequence[str]) -> list[tuple[Path, Path]]:
    """Expand files and folders into ``(file, path relative to its root)`` pairs, sorted per folder."""
    found: list[tuple[Path, Path]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise UsageError(f"no images in folder {path}", hint=f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
            found.extend((p, p.relative_to(path)) for p in files)
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def plan_outputs(sources: list[tuple[Path, Path]], output: Path, fmt: str | None, *,
                 name_template: str | None = None, suffix: str = "", folder: bool = False) -> list[_Item]:
    """Decide each output path, before any work is done.

    One input with a file-like OUT (ending in a writable image extension, not an existing folder) is written
    there. Otherwise OUT is a folder: each output goes under its input's relative path, named by
    ``name_template`` (default :data:`DEFAULT_NAME_TEMPLATE`) from the input's stem, the output extension
    (``fmt``, else the input's when remaster writes it, else ``png``) and ``suffix``. Two inputs that would get
    the same name never share an output: the second is named after its source's extension (``a_bmp.png``),
    then numbered. The plan depends only on the arguments and on whether OUT exists as a file or folder, so
    any runner that plans with this function writes exactly where a local run would.

    Args:
        sources: ``(file, path relative to its input root)`` pairs, as :func:`collect_inputs` gives them.
        output: OUT.
        fmt: Output extension for folder runs, without dot (``--format``), or ``None``.
        name_template: How outputs in a folder are named; fields ``{stem}``, ``{ext}``, ``{suffix}``.
        suffix: Text the default template puts after the stem (``--suffix``).
        folder: OUT was given as a folder (it ends in a path separator), whatever its extension.

    Raises:
        UsageError: OUT names an image file remaster cannot write (``out.bmp``), a name option is given with a
            one-file OUT, OUT is a file but several inputs need a folder, or the template or suffix is unusable.
    """
    template = _check_name_template(name_template, suffix)
    kind = output.suffix.lower()
    if len(sources) == 1 and not folder and not output.is_dir():
        if kind in IMAGE_SUFFIXES and kind not in WRITABLE_SUFFIXES:
            # Without this, out.bmp would quietly become a folder holding out.bmp/in.png.
            raise UsageError(f"remaster cannot write {kind} images", path=output,
                             hint=f"use one of {', '.join(sorted(WRITABLE_SUFFIXES))}, or end OUT with "
                                  f"'/' for a folder of that name")
        if kind in WRITABLE_SUFFIXES:
            if name_template is not None or suffix:
                raise UsageError(f"--suffix and --name-template name the outputs in a folder, but {output} is "
                                 "one output file", hint="give the output name itself, or a folder as -o")
            return [_Item(sources[0][0], output)]
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file, but several inputs need an output folder")
    items: list[_Item] = []
    taken: set[Path] = set()
    for source, relative in sources:
        source_ext = relative.suffix.lower()
        ext = fmt or (source_ext.lstrip(".") if source_ext in WRITABLE_SUFFIXES else "png")
        name = template.format(stem=relative.stem, ext=ext, suffix=suffix)
        _check_planned_name(name, name_template, fmt)
        target = output / relative.parent / name
        if target in taken:  # a.jpg and a.png both asked to become a.png: keep both, name the second after its source
            base = Path(name)
            stem = f"{base.stem}_{source_ext.lstrip('.')}"
            target, number = target.with_name(f"{stem}{base.suffix}"), 1
            while target in taken:  # two input folders can hold the same names: never plan one output twice
                number += 1
                target = target.with_name(f"{stem}_{number}{base.suffix}")
        taken.add(target)
        items.append(_Item(source, target))
    return items


#: One name for each format, to tell whether a template's extension and --format agree.
_FORMAT_OF = {".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".webp": "webp"}


def _check_name_template(name_template: str | None, suffix: str) -> str:
    """The template to name outputs with; refuses one that could write outside the output folder."""
    for option, text in (("--suffix", suffix), ("--name-template", name_template or "")):
        if any(sep in text for sep in ("/", "\\", "\0")) or ".." in text:
            raise UsageError(f"{option} {text!r} could write outside the output folder",
                             hint="give a file name without '/', '\\' or '..'")
    if name_template is None:
        return DEFAULT_NAME_TEMPLATE
    if PurePosixPath(name_template).is_absolute() or PureWindowsPath(name_template).drive:
        raise UsageError(f"--name-template {name_template!r} is an absolute path", hint="give a file name only")
    fields = ", ".join(f"{{{name}}}" for name in NAME_FIELDS)
    try:
        parts = list(string.Formatter().parse(name_template))
    except ValueError as exc:  # a lone '{' or '}'
        raise UsageError(f"--name-template {name_template!r}: {exc}",
                         hint=f"use {fields}; write {{{{ or }}}} for a literal brace") from None
    used = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in NAME_FIELDS or spec or conversion:
            given = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise UsageError(f"--name-template {name_template!r}: unknown field {given}",
                             hint=f"use the plain fields {fields}")
        used.add(name)
    if suffix and "suffix" not in used:
        raise UsageError(f"--suffix {suffix!r} is not used: the name template has no {{suffix}}",
                         hint=f"add {{suffix}} to the template, e.g. '{{stem}}{{suffix}}.{{ext}}'")
    return name_template


def _check_planned_name(name: str, name_template: str | None, fmt: str | None) -> None:
    """A templated name must end in an extension remaster writes, and agree with --format."""
    kind = PurePosixPath(name).suffix.lower()
    if kind not in WRITABLE_SUFFIXES:
        raise UsageError(f"--name-template {name_template!r} gives the name {name!r}, which does not end in an image "
                         f"extension remaster writes", hint="end the template with '.{ext}' (or .png, .jpg, ...)")
    if fmt and _FORMAT_OF[kind] != _FORMAT_OF[f".{fmt}"]:
        raise UsageError(f"--name-template {name_template!r} names {kind} files, but --format asks for {fmt}",
                         hint="use '.{ext}' in the template, or leave out --format")


def _check_writable(items: list[_Item], report: str | None = None) -> None:
    """Fail before loading any model when the output folder (or the report's) cannot be written."""
    folders = {item.target.parent for item in items} | ({Path(report).parent} if report else set())
    for folder in sorted(folders):
        # Nothing is created yet: a mistake found later (an unknown stage) must not leave empty folders.
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(f"cannot create the output folder: {existing} is a file", path=folder)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError("the output folder is not writable", path=folder,
                              hint="choose another folder with -o or fix its permissions")


def _upscale_pipeline(args: argparse.Namespace) -> list[str]:
    from .pipeline import default_upscaler, format_stage, resolve_spec
    from .plugins import get_host

    name = args.model or default_upscaler(get_host())
    spec = resolve_spec(name, get_host())
    if args.scale is not None and args.scale <= 0:
        raise UsageError(f"--scale must be positive, not {args.scale}")
    # A plugin's options may turn the upscale into another pipeline (remaster-gfpgan's --face).
    pipeline = get_host().upscale_pipeline(args, name, args.scale or spec.info.scale)
    if pipeline is not None:
        return pipeline
    if args.scale is None:
        return [name]
    if spec.info.scale_param is not None:
        return [format_stage(name, {spec.info.scale_param: args.scale})]
    native = spec.info.scale
    if abs(args.scale - native) < 1e-9:
        return [name]
    # A fixed-scale model runs at its native factor; a good filter covers the rest.
    return [name, f"lanczos(scale={args.scale / native!r})"]


def _degrade_pipeline(args: argparse.Namespace) -> list[str]:
    # Real-ESRGAN's first-order order: blur, resize, noise, then JPEG last as a camera/codec would.
    stages = []
    if args.blur:
        stages.append(f"degrade.blur(sigma={args.blur!r})")
    if args.downsample:
        stages.append(f"degrade.downsample(scale={args.downsample!r})")
    if args.noise:
        stages.append(f"degrade.noise(sigma={args.noise!r}, seed={args.seed})")
    if args.jpeg:
        stages.append(f"degrade.jpeg(quality={args.jpeg})")
    if not stages:
        raise UsageError("nothing to do", hint="give at least one of --blur, --downsample, --noise, --jpeg")
    return stages


def _parse_tile(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--tile must be 'auto' or a number of pixels, not {text!r}") from None
    if value < 0:
        raise UsageError("--tile must not be negative")
    return value


def _process(args: argparse.Namespace, make_stages: Callable[[], list[str]]) -> int:
    from tqdm import tqdm

    from .devices import describe_device
    from .pipeline import DEFAULT_MAX_OUTPUT_PIXELS, Remasterer

    items = plan_outputs(collect_inputs(args.inputs), Path(args.output), args.format, name_template=args.name_template,
                         suffix=args.suffix, folder=args.output.endswith(_SEPARATORS))
    _check_writable(items, args.report)  # before the stages are resolved: a model file given as a stage is read then
    if args.skip_existing:
        for item in items:  # outputs are written atomically: one that is there is complete
            item.skipped = item.target.is_file()
        if all(item.skipped for item in items):  # a finished run, resumed: no model is read at all
            if not args.quiet and not args.json:
                for item in items:
                    print(_skipped_line(item), file=sys.stderr)
            return _finish(args, items, interrupted=False)
    try:
        remasterer = Remasterer(
            make_stages(), device=args.device, precision=args.precision, tile=_parse_tile(args.tile),
            max_pixels=args.max_pixels, max_output_pixels=args.max_output_pixels or DEFAULT_MAX_OUTPUT_PIXELS,
        )
        _warn_plugin_errors(args)
        planned = [choice.name for choice in remasterer.precisions(8)]
        if not args.quiet and not args.json:
            print(f"remaster: {remasterer.describe()} on {describe_device(remasterer.device)}, {len(items)} image(s)",
                  file=sys.stderr)
        remasterer.prepare()  # missing weights stop the run here, before any image is read
    except KeyboardInterrupt:  # while models load: the report still says that nothing was done
        if args.report:
            _write_report(Path(args.report), _summary(items, interrupted=True))
        raise
    bar = tqdm(total=len(items), unit="img", disable=args.quiet or None, leave=False, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}]")
    interrupted = False
    try:
        for index, item in enumerate(items):
            if item.skipped:
                bar.n = index + 1
                if not args.quiet and not args.json:
                    bar.write(_skipped_line(item), file=sys.stderr)
                continue
            bar.set_postfix_str(item.source.name, refresh=False)

            def progress(fraction: float, _index: int = index) -> None:
                bar.n = _index + fraction
                bar.refresh()

            started = time.perf_counter()
            try:
                _, result = remasterer.run_file(item.source, item.target, overwrite=args.overwrite,
                                                quality=args.quality, progress=progress)
                item.ok, item.extras = True, dict(result.meta.extras)
            except RemasterError as exc:
                if args.debug:
                    traceback.print_exc()
                # A stage's error names the stage; the line must also name the file it happened to.
                item.error = str(exc) if str(item.source) in str(exc) else f"{item.source}: {exc}"
            except Exception as exc:  # keep a folder run going past one bad file, whatever broke
                if args.debug:
                    traceback.print_exc()
                item.error = f"{item.source}: {type(exc).__name__}: {exc}"
            item.seconds = time.perf_counter() - started
            if item.error:
                bar.write(f"remaster: error: {item.error}", file=sys.stderr)
            elif not args.quiet and not args.json:
                bar.write(f"{item.source} -> {item.target} ({item.seconds:.1f} s{_plugin_notes(item.extras, bar)}"
                          f"{_precision_note(item.extras, planned)})", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return _finish(args, items, interrupted)


def _skipped_line(item: _Item) -> str:
    return f"{item.source} -> {item.target} (skipped: already exists)"


def _finish(args: argparse.Namespace, items: list[_Item], interrupted: bool) -> int:
    """Report the run (--report, --json or the closing line) and return its exit code."""
    summary = _summary(items, interrupted)
    if args.report:
        _write_report(Path(args.report), summary)
    if args.json:
        print(json.dumps(summary, indent=2, default=_json_value))
    elif not args.quiet:
        done = summary["ok"]
        print(f"{done} of {len(items)} image(s) written to {args.output}" + (
            f", {summary['skipped']} skipped (already there)" if summary["skipped"] else "") + (
            f", {summary['failed']} failed" if summary["failed"] else ""), file=sys.stderr)
    if interrupted:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


def _summary(items: list[_Item], interrupted: bool) -> dict[str, Any]:
    """What --json prints and --report writes: counts, then one entry per file tried."""
    return {"ok": sum(i.ok for i in items), "skipped": sum(i.skipped for i in items),
            "failed": sum(1 for i in items if i.error),
            "not_done": sum(1 for i in items if not (i.ok or i.skipped or i.error)), "interrupted": interrupted,
            "items": [i.as_json() for i in items if i.ok or i.skipped or i.error]}


def _precision_note(extras: dict[str, Any], planned: list[str]) -> str:
    """The precisions that ran, for the per-image line, when they are not the ones the header announced."""
    ran = [str(entry.get("precision")) for entry in extras.get("stages", [])]
    if not ran or ran == planned:
        return ""
    return f", ran in {' | '.join(ran)}"


def _plugin_notes(extras: dict[str, Any], bar: Any) -> str:
    """What plugins say about what their stages reported (``remaster_item_note``), for the per-image log line."""
    from .plugins import get_host

    host = get_host()
    known = len(host.warnings)
    notes = host.item_notes(extras)
    for warning in host.warnings[known:]:  # a note that broke is said once, and the run goes on
        bar.write(f"remaster: warning: plugin {warning}", file=sys.stderr)
    return "".join(f", {note}" for note in notes)


def _write_report(path: Path, summary: dict[str, Any]) -> None:
    from .io import write_atomic

    write_atomic(path, (json.dumps(summary, indent=2, default=_json_value) + "\n").encode())


def _json_value(value: Any) -> Any:
    """What stages report may be numpy or torch scalars/arrays (e.g. a face count); JSON gets plain values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _warn_plugin_errors(args: argparse.Namespace) -> None:
    from .plugins import get_host

    if args.quiet:
        return
    host = get_host()
    for error in [*host.errors, *host.warnings]:
        print(f"remaster: warning: plugin {error}", file=sys.stderr)


def _list_stages(args: argparse.Namespace) -> int:
    from .plugins import get_host

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
    from .plugins import get_host

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


def _weights(args: argparse.Namespace) -> int:
    from .weights import get_manager

    manager = get_manager()
    if args.weights_command != "path":  # 'path' output is meant for scripts: keep stderr quiet too
        _warn_plugin_errors(args)
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
        elif row.state != "packaged":
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


def _eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluation import evaluate, format_value, split_list

    if args.crop_border < 0:
        raise UsageError("--crop-border must not be negative")
    hr = [(relative.as_posix(), path) for path, relative in collect_inputs(args.hr)]
    _warn_plugin_errors(args)
    bar = None

    def progress(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="run", disable=args.quiet or None, leave=False, file=sys.stderr)
        bar.set_postfix_str(what, refresh=False)
        bar.update(done - bar.n)

    try:
        report = evaluate(hr, degrade=args.degrade, candidates=split_list(args.candidates), metrics=args.metrics,
                          crop_border=args.crop_border, y_channel=args.y_channel, out_dir=args.output,
                          sheets=not args.no_sheets, save_images=args.save_images, device=args.device,
                          precision=args.precision, tile=_parse_tile(args.tile), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(report.to_json(), end="")
        return 0
    if not args.quiet:
        for warning in report.warnings:
            print(f"remaster: warning: {warning}", file=sys.stderr)
        labels = report.metric_labels
        width = max(len("candidate"), *(len(c) for c in report.candidates))
        print(f"{'candidate':<{width}}  " + "  ".join(f"{m:>10}" for m in labels) + f"  {'s/image':>8}")
        for c in report.candidates:
            print(f"{c:<{width}}  " + "  ".join(f"{format_value(m, report.mean(c, m)):>10}" for m in labels)
                  + f"  {report.mean_seconds(c):>8.3f}")
        print(f"mean over {len(report.images)} image(s); report written to {report.files['md']}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .evaluation import compare_images, format_value

    if args.crop_border < 0:
        raise UsageError("--crop-border must not be negative")
    for path in (args.a, args.b):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    scores = compare_images(args.a, args.b, metrics=args.metrics, crop_border=args.crop_border,
                            y_channel=args.y_channel)
    if args.json:
        from .evaluation import json_number as _json_number

        values = {k: ({"a": _json_number(v["a"]), "b": _json_number(v["b"])} if isinstance(v, dict)
                      else _json_number(v)) for k, v in scores.items()}
        print(json.dumps({"a": args.a, "b": args.b, "crop_border": args.crop_border, "y_channel": args.y_channel,
                          "scores": values}, indent=2))
        return 0
    if not args.quiet:
        width = max(len("metric"), *(len(k) + 4 * isinstance(v, dict) for k, v in scores.items()))
        print(f"{'metric':<{width}}  {'value':>10}")
        for key, value in scores.items():
            if isinstance(value, dict):
                print(f"{key + ' (A)':<{width}}  {format_value(key, value['a']):>10}")
                print(f"{key + ' (B)':<{width}}  {format_value(key, value['b']):>10}")
            else:
                print(f"{key:<{width}}  {format_value(key, value):>10}")
    return 0


class _LineFormatter(logging.Formatter):
    """``remaster: warning: <message>``: log records look like the command's own error lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"remaster: {record.levelname.lower()}: {record.message}"


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command: one log line, not Python's two-line dump of the source."""
    text = str(message)
    # remaster's own warnings name the file and the remedy; another library's needs its origin to make sense.
    if not issubclass(category, RemasterWarning) or log.isEnabledFor(logging.DEBUG):
        text = f"{text} ({category.__name__} at {filename}:{lineno})"
    log.warning("%s", text)


@contextlib.contextmanager
def _console(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs: log records and warnings go to stderr as single lines; -q leaves only errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    handler.setLevel(logging.ERROR if args.quiet else logging.DEBUG if args.debug else logging.WARNING)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if args.debug:
        root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():  # restores the caller's warning machinery (main is also called in-process)
            warnings.showwarning = _show_warning
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _stdout_to_devnull() -> None:
    """After a closed pipe: Python's recipe (docs of ``signal``, "Note on SIGPIPE").

    Pointing stdout at devnull keeps the flush at interpreter exit from failing a second time with an
    "Exception ignored" message.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in-process): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``remaster`` command; returns the exit code."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        with _console(args):
            code = _command(parser, args)
            sys.stdout.flush()  # a short output reaches a closed pipe only here
        return code
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as the standard tools do
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    except RemasterError as exc:
        if debug:
            traceback.print_exc()
        print(f"remaster: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: still one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"remaster: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the command ``args`` name; returns its exit code."""
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "stages":
        return _list_stages(args)
    if args.command == "plugins":
        return _list_plugins(args)
    if args.command == "weights":
        return _weights(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "finetune":
        return _finetune(args)
    if args.command == "upscale":
        return _process(args, lambda: _upscale_pipeline(args))
    if args.command == "degrade":
        return _process(args, lambda: _degrade_pipeline(args))
    from .pipeline import parse_pipeline

    return _process(args, lambda: parse_pipeline(args.pipeline))


if __name__ == "__main__":
    sys.exit(main())
