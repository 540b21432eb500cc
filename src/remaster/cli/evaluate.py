"""``eval`` and ``compare``: score candidates on degraded originals, or one image against a reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from remaster.cli.console import warn_plugin_errors
from remaster.cli.parser import pipeline_options
from remaster.errors import UsageError
from remaster.runs.plan import collect_inputs

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    """The ``eval`` command's arguments: degrade HR images, upscale them with each candidate, score, report."""
    from remaster.evaluation import DEFAULT_DEGRADE, DEFAULT_METRICS

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
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or vulkan[:N] (default: auto)")
    evaluate.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                          help="compute precision of the candidates (default: auto)")
    evaluate.add_argument("--tile", default="auto", metavar="N|auto", help="tile size for the candidates")
    evaluate.add_argument("--no-sheets", action="store_true", help="do not draw the comparison sheets")
    evaluate.add_argument("--save-images", action="store_true",
                          help="also write every degraded input and output under REPORT_DIR/images/")


def compare_arguments(compare: argparse.ArgumentParser) -> None:
    """The ``compare`` command's arguments: one image scored against a reference."""
    from remaster.evaluation import COMPARE_METRICS

    compare.add_argument("a", metavar="A", help="the image to score (e.g. a restored one)")
    compare.add_argument("b", metavar="B", help="the reference (e.g. the original)")
    compare.add_argument("--metrics", default=",".join(COMPARE_METRICS), metavar="LIST",
                         help=f"comma-separated metrics (default: {','.join(COMPARE_METRICS)}); "
                              "no-reference ones are given for each image")
    compare.add_argument("--crop-border", type=int, default=0, metavar="N", help="pixels cut from each edge")
    compare.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 luma")


def evaluate(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster eval``: the evaluation run, its table on stdout and its report files."""
    from tqdm import tqdm

    from remaster.evaluation import evaluate as run_evaluation
    from remaster.evaluation import format_value, split_list

    if args.crop_border < 0:
        raise UsageError("--crop-border must not be negative")
    hr = [(relative.as_posix(), path) for path, relative in collect_inputs(args.hr)]
    warn_plugin_errors(args, host)
    bar = None

    def progress(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="run", disable=args.quiet or None, leave=False, file=sys.stderr)
        bar.set_postfix_str(what, refresh=False)
        bar.update(done - bar.n)

    try:
        report = run_evaluation(hr, degrade=args.degrade, candidates=split_list(args.candidates), metrics=args.metrics,
                          crop_border=args.crop_border, y_channel=args.y_channel, out_dir=args.output,
                          sheets=not args.no_sheets, save_images=args.save_images, options=pipeline_options(args),
                          progress=progress, host=host)
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


def compare(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster compare A B``: the scores of A against the reference B."""
    from remaster.evaluation import compare_images, format_value

    if args.crop_border < 0:
        raise UsageError("--crop-border must not be negative")
    for path in (args.a, args.b):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    scores = compare_images(args.a, args.b, metrics=args.metrics, crop_border=args.crop_border,
                            y_channel=args.y_channel, host=host)
    if args.json:
        from remaster.evaluation import json_number

        values = {k: ({"a": json_number(v["a"]), "b": json_number(v["b"])} if isinstance(v, dict)
                      else json_number(v)) for k, v in scores.items()}
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
