"""A short GPU check: the Real-ESRGAN stages in every precision the GPU runs, batched tiles, out-of-memory back-off.

    make gpu-check                      # the CUDA-marked tests, then this script; results in gpu-check/
    .venv/bin/python benchmarks/gpu_check.py --out gpu-check/bench.json [--size 512] [--repeats 5]
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check.json   # the script's own test

For ``realesr-animevideov3`` and ``realesrgan-x4plus`` on a ``--size``-pixel crop of
``skimage.data.astronaut`` it measures, in one process on one device:

* each precision the device runs (fp16 and bf16 on CUDA where supported, fp32), untiled and with
  tiles of ``--tile`` pixels (batched four at a time on a GPU, as the pipeline does): images per
  second (median of ``--repeats`` after a warm-up), peak device memory, and the PSNR of the
  8-bit output against fp32 untiled;
* the out-of-memory back-off: with ``torch.cuda.set_per_process_memory_fraction`` lowered so
  that an untiled ``--oom-size`` run cannot fit, ``tile=0`` must still finish by halving its
  tiles, and agree with an ordinary tiled run (PSNR).

It writes a JSON file (``--out``) and prints a Markdown table whose header names the device,
the command and the software versions, ready for docs/benchmarks.md. Figures need a GPU; on a
CPU (``--device cpu``) the script checks only that it still runs (fp32, and no back-off check).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from remaster import Remasterer
from remaster.pipeline import devices
from remaster import io as rio

MODELS = ("realesr-animevideov3", "realesrgan-x4plus")


def photo(size: int) -> np.ndarray:
    """A ``size``×``size`` RGB crop of skimage's astronaut (tiled when larger than the photo)."""
    from skimage import data

    source = data.astronaut()
    reps = math.ceil(size / source.shape[0])
    return np.tile(source, (reps, reps, 1))[:size, :size].copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def precisions_for(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else []) + ["fp32"]
    return ["fp32"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: str, precision: str, tile: int, image: np.ndarray, device: torch.device,
            repeats: int) -> dict[str, Any]:
    """Images per second, peak memory and the output of one configuration."""
    remasterer = Remasterer(model, device=str(device), precision=precision, tile=tile).prepare()
    remasterer.run(image)  # warm-up: kernels chosen for this shape
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, out = [], None
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        out = remasterer.run(image)
        synchronize(device)
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    seconds = statistics.median(times)
    return {"model": model, "precision": precision, "tile": tile, "size": image.shape[0], "seconds": seconds,
            "images_per_second": 1.0 / seconds, "peak_device_bytes": peak, "output": out}


def backoff_check(model: str, size: int, device: torch.device, tile: int) -> dict[str, Any]:
    """An untiled run that cannot fit under a lowered memory fraction must back off to tiles and finish."""
    image = photo(size)
    reference = Remasterer(model, device=str(device), precision="fp16", tile=tile).run(image)
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.empty_cache()
    # About what a tile of ``tile`` pixels needs, far below what the whole image needs.
    fraction = min(0.5, max(0.02, 3 * 2**30 / total))
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("remaster").addHandler(handler)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    try:
        started = time.perf_counter()
        out = Remasterer(model, device=str(device), precision="fp16", tile=0).run(image)
        seconds = time.perf_counter() - started
        error = None
    except Exception as exc:  # the check's result, not a crash of the script
        out, seconds, error = None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        logging.getLogger("remaster").removeHandler(handler)
        torch.cuda.empty_cache()
    return {"model": model, "size": size, "memory_fraction": fraction, "finished": out is not None,
            "seconds": seconds, "error": error, "log": messages,
            "psnr_vs_tiled": None if out is None else psnr(out, reference)}


def machine(device: torch.device) -> dict[str, str]:
    return {"device": devices.describe_device(device), "torch": torch.__version__,
            "cuda": str(torch.version.cuda), "python": platform.python_version(), "host": platform.node(),
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"GPU check on {m['device']} (torch {m['torch']}, CUDA {m['cuda']}), {m['date']}; command: "
             f"`{result['command']}`", "",
             "| model | precision | tile | input | images/s | peak device memory | PSNR vs fp32 (dB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        peak = "–" if row["peak_device_bytes"] is None else f"{row['peak_device_bytes'] / 2**30:.2f} GiB"
        value = row["psnr_vs_fp32"]
        lines.append(f"| {row['model']} | {row['precision']} | {row['tile'] or 'none'} | {row['size']}² | "
                     f"{row['images_per_second']:.2f} | {peak} | {'∞' if value == math.inf else f'{value:.1f}'} |")
    for check in result["backoff"]:
        lines.append("")
        lines.append(f"Out-of-memory back-off, {check['model']} at {check['size']}², memory fraction "
                     f"{check['memory_fraction']:.3f}: " + (
                         f"finished in {check['seconds']:.1f} s, {check['psnr_vs_tiled']:.1f} dB from a tiled run"
                         if check["finished"] else f"FAILED ({check['error']})"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (only checks that the script runs)")
    parser.add_argument("--size", type=int, default=512, help="input side in pixels (default 512)")
    parser.add_argument("--tile", type=int, default=256, help="tile size of the tiled rows (default 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5)")
    parser.add_argument("--oom-size", type=int, default=1536, help="input side of the back-off check (default 1536)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks the script itself")
    parser.add_argument("--out", type=Path, default=Path("gpu-check/bench.json"), help="JSON results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.tile, args.repeats, args.oom_size = 24, 16, 1, 64
    device = devices.resolve_device(args.device)
    image = photo(args.size)
    rows: list[dict[str, Any]] = []
    for model in MODELS:
        reference = None
        for precision in reversed(precisions_for(device)):  # fp32 first: the others are scored against it
            for tile in (0, args.tile):
                row = measure(model, precision, tile, image, device, args.repeats)
                out = row.pop("output")
                if reference is None:
                    reference = out
                row["psnr_vs_fp32"] = psnr(out, reference)
                rows.append(row)
                print(f"{model} {precision} tile={tile}: {row['images_per_second']:.2f} img/s, "
                      f"{row['psnr_vs_fp32']:.1f} dB", file=sys.stderr, flush=True)
    backoff = [backoff_check("realesrgan-x4plus", args.oom_size, device, args.tile)] if device.type == "cuda" else []
    command = "python " + " ".join(shlex.quote(part) for part in ["benchmarks/gpu_check.py", *(argv or sys.argv[1:])])
    result = {"machine": machine(device), "command": command, "rows": rows, "backoff": backoff}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    failed = [check for check in backoff if not check["finished"]]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
