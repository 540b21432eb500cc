"""The ``remaster`` command: a thin layer that parses, calls the library and prints.

Exit codes: 0 when everything succeeded, 1 when some items failed, 2 for usage
errors, 130 when interrupted. Errors print as one line unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .errors import OutputError, RemasterError, UnknownStageError, UsageError

log = logging.getLogger("remaster")

#: Extensions picked up when a folder is given as input.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif"}
#: Extensions remaster can write; other inputs are written as PNG.
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


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
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs, even the input itself")
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality 1-100 (default 95)")
    parser.add_argument("--format", choices=["png", "jpg", "webp", "tif"],
                        help="output format for folder runs (default: the input's, or PNG)")
    parser.add_argument("--max-pixels", type=int, metavar="N", help="largest input accepted, in pixels")
    parser.add_argument("--max-output-pixels", type=int, metavar="N", help="largest output allowed, in pixels")
    parser.add_argument("--report", metavar="FILE", help="write a JSON report of every item to FILE")
    _common(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``remaster`` command."""
    parser = _Parser(prog="remaster", description="Restore and upscale images.")
    parser.add_argument("--version", action="version", version=f"remaster {__version__}")
    parser.set_defaults(quiet=False, json=False, debug=False)
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    upscale = commands.add_parser("upscale", help="upscale images (default model: the default pipeline's upscaler)")
    upscale.add_argument("--model", help="upscaler stage name (see 'remaster stages')")
    upscale.add_argument("--scale", type=float, help="output scale; resampled from the model's native scale if different")
    upscale.add_argument("--face", action="store_true",
                         help="restore faces with GFPGAN too (faces from the input, the rest from the upscaler)")
    upscale.add_argument("--face-weight", type=float, metavar="W",
                         help="how much of each restored face to use, 0-1 (default 1; implies --face)")
    upscale.add_argument("--face-model", metavar="NAME|PATH",
                         help="face network: 1.3, 1.4 (default), restoreformer, or a checkpoint file (implies --face)")
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
    return parser


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
               "seconds": round(result.seconds, 1), "steps_per_second": round(result.steps_per_second, 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        before, after = result.initial or {}, result.final or {}
        print(f"validation PSNR {before.get('val_psnr', float('nan')):.2f} -> {after.get('val_psnr', float('nan')):.2f}"
              f" dB, SSIM {before.get('val_ssim', float('nan')):.4f} -> {after.get('val_ssim', float('nan')):.4f}; "
              f"best at step {result.best_step}: {result.run_dir / 'best.safetensors'} "
              f"({result.steps_per_second:.2f} steps/s)", file=sys.stderr)
    return 0


@dataclass
class _Item:
    source: Path
    target: Path
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """One report entry; what stages reported (e.g. ``faces``) follows, never replacing these keys."""
        entry = {"input": str(self.source), "output": str(self.target) if self.ok else None, "ok": self.ok,
                 "error": self.error, "seconds": round(self.seconds, 3)}
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


def plan_outputs(sources: list[tuple[Path, Path]], output: Path, fmt: str | None) -> list[_Item]:
    """Decide each output path; one input with a file-like OUT is written there, else into the folder OUT."""
    if len(sources) == 1 and output.suffix.lower() in WRITABLE_SUFFIXES and not output.is_dir():
        return [_Item(sources[0][0], output)]
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file, but several inputs need an output folder")
    items: list[_Item] = []
    taken: set[Path] = set()
    for source, relative in sources:
        suffix = f".{fmt}" if fmt else (relative.suffix.lower() if relative.suffix.lower() in WRITABLE_SUFFIXES else ".png")
        target = output / relative.with_suffix(suffix)
        if target in taken:  # a.jpg and a.png both asked to become a.png: keep both, name the second after its source
            stem = f"{relative.stem}_{relative.suffix.lstrip('.').lower()}"
            target, number = target.with_name(f"{stem}{suffix}"), 1
            while target in taken:  # two input folders can hold the same names: never plan one output twice
                number += 1
                target = target.with_name(f"{stem}_{number}{suffix}")
        taken.add(target)
        items.append(_Item(source, target))
    return items


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
    if args.face or args.face_weight is not None or args.face_model:
        return [_face_stage(args, name, args.scale or spec.info.scale)]
    if args.scale is None:
        return [name]
    if spec.info.scale_param is not None:
        return [format_stage(name, {spec.info.scale_param: args.scale})]
    native = spec.info.scale
    if abs(args.scale - native) < 1e-9:
        return [name]
    # A fixed-scale model runs at its native factor; a good filter covers the rest.
    return [name, f"lanczos(scale={args.scale / native!r})"]


#: The stage ``--face`` adds (plugins/remaster-gfpgan).
FACE_STAGE = "gfpgan"


def _face_stage(args: argparse.Namespace, upscaler: str, scale: float) -> str:
    """Real-ESRGAN's ``--face_enhance``: faces restored from the input, pasted on the upscaled background."""
    from .pipeline import format_stage, resolve_spec
    from .plugins import get_host

    try:
        resolve_spec(FACE_STAGE, get_host())
    except UnknownStageError:
        raise UsageError("--face needs the face restoration plugin, which is not installed",
                         hint="install plugins/remaster-gfpgan (make install does)") from None
    params: dict[str, Any] = {"upscale": float(scale), "background": upscaler}
    if args.face_weight is not None:
        params["weight"] = args.face_weight
    if args.face_model:
        # A file is a checkpoint; anything else is a version name, which the stage validates.
        params["model" if Path(args.face_model).expanduser().is_file() else "version"] = args.face_model
    return format_stage(FACE_STAGE, params)


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

    from .pipeline import DEFAULT_MAX_OUTPUT_PIXELS, Remasterer

    items = plan_outputs(collect_inputs(args.inputs), Path(args.output), args.format)
    _check_writable(items, args.report)  # before the stages are resolved: a model file given as a stage is read then
    try:
        remasterer = Remasterer(
            make_stages(), device=args.device, precision=args.precision, tile=_parse_tile(args.tile),
            max_pixels=args.max_pixels, max_output_pixels=args.max_output_pixels or DEFAULT_MAX_OUTPUT_PIXELS,
        )
        _warn_plugin_errors(args)
        if not args.quiet and not args.json:
            print(f"remaster: {' | '.join(map(str, remasterer.stages))} on {remasterer.device}, {len(items)} image(s)",
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
                bar.write(f"{item.source} -> {item.target} ({item.seconds:.1f} s{_faces_note(item.extras)})",
                          file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    summary = _summary(items, interrupted)
    if args.report:
        _write_report(Path(args.report), summary)
    if args.json:
        print(json.dumps(summary, indent=2, default=_json_value))
    elif not args.quiet:
        done = summary["ok"]
        print(f"{done} of {len(items)} image(s) written to {args.output}" + (
            f", {summary['failed']} failed" if summary["failed"] else ""), file=sys.stderr)
    if interrupted:
        print("remaster: interrupted", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


def _summary(items: list[_Item], interrupted: bool) -> dict[str, Any]:
    """What --json prints and --report writes: counts, then one entry per file tried."""
    return {"ok": sum(i.ok for i in items), "failed": sum(1 for i in items if i.error),
            "not_done": sum(1 for i in items if not i.ok and not i.error), "interrupted": interrupted,
            "items": [i.as_json() for i in items if i.ok or i.error]}


def _faces_note(extras: dict[str, Any]) -> str:
    """What a face stage reported, for the per-image log line."""
    if "faces" not in extras:
        return ""
    found, restored = extras.get("faces_found", extras["faces"]), extras["faces"]
    if not found:
        return ", no face found: unchanged by the face stage"
    detector = f" ({extras['face_detector']})" if extras.get("face_detector") else ""
    return f", {restored} of {found} face(s) restored{detector}"


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
    for error in get_host().errors:
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
        from .evaluation import _json_number

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``remaster`` command; returns the exit code."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                            format="remaster: %(levelname)s: %(message)s")
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


if __name__ == "__main__":
    sys.exit(main())
