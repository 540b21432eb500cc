"""Compare our Real-ESRGAN stages with the official ``RealESRGANer(half=True)`` on one CUDA GPU, in one process.

    .venv/bin/python benchmarks/compare_realesrgan_gpu.py --out gpu-compare/compare.json [--docs docs/benchmarks.md]
    .venv/bin/python benchmarks/compare_realesrgan_gpu.py --models realesr-animevideov3 --sizes 512x512 --repeats 3

For ``realesrgan-x4plus`` and ``realesr-animevideov3`` on real-photo inputs
(``skimage.data.astronaut``, mirrored past its 512×512) of ``--sizes`` (default
512×512 and 1920×1080), on the same GPU, it measures:

* ours fp32, untiled: the reference the others are scored against;
* ours fp16 under autocast (float32 weights, the default), ours with fp16
  weights (``half_weights=True``), and ours bf16 under autocast where the GPU
  has bf16: untiled (``tile=0``) and with ``--tile`` tiles (batched four at a
  time, as the pipeline does on a GPU);
* the same three with ``compile=True`` (torch.compile, ``--compile-backend``,
  fixed tiles one at a time: ``--tile``, or smaller where the fixed window
  would not fit in the image, which would pad its edge); their compile time
  (the first call, compilation included) is its own column;
* the official ``realesrgan.RealESRGANer`` with ``half=True``, ``tile=0`` and
  ``tile=512`` (``tile_pad=10``, ``pre_pad=0``, as ``inference_realesrgan.py``
  runs by default), with the same weights (written as an official ``.pth``).

Per row: images per second (median of ``--repeats`` timed runs after a warm-up,
``torch.cuda.synchronize`` around each), achieved TFLOP/s (the convolutions'
FLOPs, 2 per multiply-add, counted with forward hooks on the network -- padding
and tile overlap not counted, so it is useful work) against the GPU's dense
fp16 tensor peak (a table of datasheet figures by GPU name, or ``--peak-tflops``),
peak GPU memory (``torch.cuda.max_memory_allocated`` over the timed runs), and
the PSNR of the 8-bit output against ours fp32. Each row's speed is also given
as a multiple of the official ``tile=0`` row's (the issue's target: 3× at
≥ 45 dB).

It refuses to run without CUDA (one line, exit code 2). It writes ``--out``
(JSON) and its ``.md`` sibling after every row (so a run cut short by a time
limit keeps what it measured: the reference and the official rows come first,
the compiled rows last), prints the Markdown, and with ``--docs`` replaces
the section between this script's markers in that file (docs/benchmarks.md).
Needs the test-only peers (``requirements-peers.txt``) for the official rows;
without them those rows are skipped and say so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
MODELS = ("realesrgan-x4plus", "realesr-animevideov3")
SIZES = ("512x512", "1920x1080")
#: Dense fp16 tensor-core peak (no sparsity), TFLOP/s, from NVIDIA's datasheets, by a substring of the GPU's name.
#: First match wins, so the more specific names come first.
TENSOR_PEAK_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0),
    ("A100", 312.0), ("A800", 312.0), ("A10G", 70.0), ("A10", 125.0), ("L40S", 362.0), ("L40", 181.0),
    ("L4", 121.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0), ("T4", 65.0),
)
START_MARKER = "<!-- compare_realesrgan_gpu.py: start -->"
END_MARKER = "<!-- compare_realesrgan_gpu.py: end -->"


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` → ``(1080, 1920)`` (height, width)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 1920x1080, not {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"a size must be positive, not {text!r}")
    return height, width


def tensor_peak(name: str, override: float | None) -> float | None:
    """The GPU's dense fp16 tensor peak in TFLOP/s: ``override``, else the datasheet table, else None."""
    if override is not None:
        return override
    return next((peak for key, peak in TENSOR_PEAK_TFLOPS if key in name), None)


def _compare_module() -> Any:
    """benchmarks/compare_realesrgan.py, for its photo crops, PSNR, weights names and official networks."""
    sys.path.insert(0, str(HERE))
    import compare_realesrgan

    return compare_realesrgan


def conv_flops(model: Any, height: int, width: int, device: Any, sample: int = 64) -> float:
    """FLOPs of one forward pass at ``height``×``width``: 2 × the convolutions' multiply-adds.

    Counted on a ``sample``×``sample`` input and scaled by the pixel count (every
    layer of these fully convolutional networks scales with it).
    """
    import torch

    total = 0

    def count(module: Any, _inputs: Any, output: Any) -> None:
        nonlocal total
        total += 2 * output.numel() * module.weight[0].numel()

    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [m.register_forward_hook(count) for m in convolutions]
    parameter = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, sample, sample, device=device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
    return total * (height * width) / (sample * sample)


def timed(run: Callable[[Any], Any], image: Any, repeats: int) -> tuple[float, float, Any, int]:
    """(first call's seconds, median seconds of ``repeats`` more, last output, peak bytes over the timed runs)."""
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    out = run(image)  # warm-up: cuDNN's algorithm choice, or the compilation
    torch.cuda.synchronize()
    first = time.perf_counter() - started
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        out = run(image)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times), out, torch.cuda.max_memory_allocated()


def ours(model: str, precision: str, tile: int, *, half_weights: bool = False, compile: bool = False,
         backend: str = "inductor") -> Callable[[Any], Any]:
    from remaster import Remasterer

    remasterer = Remasterer(model, device="cuda", precision=precision, tile=tile, half_weights=half_weights,
                            compile=compile, compile_backend=backend).prepare()
    return remasterer.run


def official(compare: Any, model: str, pth: Path, tile: int) -> Callable[[Any], Any]:
    import numpy as np
    import torch

    compare._alias_functional_tensor()
    from realesrgan import RealESRGANer

    upsampler = RealESRGANer(scale=4, model_path=str(pth), model=compare._official_network(compare.MODELS[model][1]),
                             tile=tile, tile_pad=10, pre_pad=0, half=True, device=torch.device("cuda"))

    def run(rgb: Any) -> Any:
        out, _mode = upsampler.enhance(np.ascontiguousarray(rgb[..., ::-1]), outscale=4)
        return np.ascontiguousarray(out[..., ::-1])

    return run


def compile_tile(tile: int, height: int, width: int, overlap: int) -> int:
    """The tile of the compiled rows: ``tile``, or less, so that the fixed window fits in the image.

    A compiled stage runs on windows of one size; an image smaller than that is padded at its bottom/right edge,
    where the network then sees reflected context (a few dB off fp32 there). A smaller tile avoids measuring that.
    """
    from remaster.pipeline.tiling import fixed_window_size

    fitting = (min(height, width) - (fixed_window_size(0, overlap))) // 8 * 8
    return min(tile, fitting) if fitting >= 64 else tile


def variants(bf16: bool, tile: int, compiled_tile: int) -> list[dict[str, Any]]:
    """Our rows, after the fp32 reference: each precision way, untiled and tiled, then compiled."""
    ways = [("fp16", "fp16", False), ("fp16 weights", "fp16", True)] + ([("bf16", "bf16", False)] if bf16 else [])
    rows = [{"label": f"ours {label}, tile={t}", "precision": p, "half_weights": h, "tile": t, "compile": False}
            for label, p, h in ways for t in (0, tile)]
    rows += [{"label": f"ours {label}, tile={compiled_tile}, compiled", "precision": p, "half_weights": h,
              "tile": compiled_tile, "compile": True} for label, p, h in ways]
    return rows


def machine() -> dict[str, str]:
    import torch

    from remaster.pipeline import devices

    return {"device": devices.describe_device(torch.device("cuda")), "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__, "cuda": str(torch.version.cuda), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}


def markdown(result: dict[str, Any]) -> str:
    m, peak = result["machine"], result["tensor_peak_tflops"]
    peak_text = f"{peak:.0f} TFLOP/s dense fp16 tensor peak" if peak else "tensor peak unknown (--peak-tflops)"
    lines = [START_MARKER, "", "## GPU: ours against the official RealESRGANer(half=True)", "",
             f"{m['device']}, torch {m['torch']}, CUDA {m['cuda']}, {m['date']}; {peak_text}. Command: "
             f"`{result['command']}`", "",
             "| model | input | method | images/s | × official tile=0 | TFLOP/s | % of peak | peak GPU memory | "
             "PSNR vs fp32 (dB) | first call (s) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        if row.get("skipped"):
            lines.append(f"| {row['model']} | {row['input']} | {row['label']} | skipped: {row['skipped']} "
                         "| | | | | | |")
            continue
        psnr = row["psnr_vs_fp32"]
        ratio = row.get("vs_official")
        share = "–" if row["peak_share"] is None else f"{100 * row['peak_share']:.1f}%"
        lines.append(
            f"| {row['model']} | {row['input']} | {row['label']} | {row['images_per_second']:.2f} | "
            f"{'–' if ratio is None else f'{ratio:.2f}×'} | {row['tflops']:.1f} | {share} | "
            f"{row['peak_bytes'] / 2**30:.2f} GiB | {'∞' if psnr == math.inf else f'{psnr:.1f}'} | "
            f"{row['first_call_seconds']:.1f} |")
    lines += ["", "First call: the warm-up run, cuDNN's algorithm search included; for compiled rows, the "
              "compilation.", "", END_MARKER]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, table: str) -> None:
    """Replace the section between this script's markers in ``path`` (appended when there is none)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if START_MARKER in text and END_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        _old, after = rest.split(END_MARKER, 1)
        text = before + table.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + table
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                        help=f"stages to measure (default: {' '.join(MODELS)})")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in SIZES],
                        metavar="WxH", help=f"input sizes (default: {' '.join(SIZES)})")
    parser.add_argument("--tile", type=int, default=512, help="our tile size in tiled and compiled rows (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row after the warm-up (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled rows")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--no-official", action="store_true", help="leave out the RealESRGANer rows")
    parser.add_argument("--no-eager", action="store_true",
                        help="leave out our eager rows (fp32, the reference, stays): the compiled rows alone")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16 tensor peak, if not in the table")
    parser.add_argument("--out", type=Path, default=Path("gpu-compare/compare.json"), help="JSON results file")
    parser.add_argument("--docs", type=Path, help="also write the table into this file (docs/benchmarks.md)")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("compare_realesrgan_gpu.py: needs a CUDA GPU, and torch.cuda.is_available() is False here; "
              "the CPU comparison is benchmarks/compare_realesrgan.py", file=sys.stderr)
        return 2
    import numpy as np

    from remaster import Remasterer
    from remaster.weights import get_manager, load_state_dict

    compare = _compare_module()
    command = "python " + " ".join(shlex.quote(p) for p in ["benchmarks/compare_realesrgan_gpu.py",
                                                              *(sys.argv[1:] if argv is None else argv)])
    info = machine()
    peak = tensor_peak(info["gpu"], args.peak_tflops)
    bf16 = torch.cuda.is_bf16_supported()
    peers = compare._available("realesrgan") if not args.no_official else "left out (--no-official)"
    rows: list[dict[str, Any]] = []
    result = {"machine": info, "command": command, "tensor_peak_tflops": peak, "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            network = Remasterer(model, device="cuda", precision="fp32", tile=0).prepare().stages[0]
            descriptor_model = network.instance(torch.device("cuda"), torch.float32).descriptor.model
            pth = Path(tmp) / f"{model}.pth"
            if peers is None:
                torch.save({"params_ema": load_state_dict(get_manager().ensure(compare._weights_name(model)))}, pth)
            for height, width in args.sizes:
                image = compare._image(height, width)
                flops = conv_flops(descriptor_model, height, width, torch.device("cuda"))
                name = f"{width}×{height}"
                # The reference and the official rows first, the compiled (slowest to set up) last: a run cut short
                # by a time limit still has what the others are measured against (results are written per row).
                plan: list[tuple[dict[str, Any], Callable[[], Callable[[Any], Any]] | None, str | None]] = [
                    ({"label": "ours fp32, tile=0"}, lambda: ours(model, "fp32", 0), None)]
                for official_tile in (0, 512):
                    spec = {"label": f"RealESRGANer half=True, tile={official_tile}", "official_tile": official_tile}
                    plan.append((spec, None if peers else lambda t=official_tile: official(compare, model, pth, t),
                                 peers))
                overlap = network.info.tile_overlap
                for spec in variants(bf16, args.tile, compile_tile(args.tile, height, width, overlap)):
                    if (spec["compile"] and args.no_compile) or (not spec["compile"] and args.no_eager):
                        continue
                    plan.append((spec, lambda s=spec: ours(model, s["precision"], s["tile"],
                                                           half_weights=s["half_weights"], compile=s["compile"],
                                                           backend=args.compile_backend), None))
                reference = None
                official_speed = None
                for spec, build, skipped in plan:
                    row: dict[str, Any] = {"model": model, "input": name, "flops": flops, **spec}
                    if build is None:
                        row["skipped"] = skipped
                        rows.append(row)
                        continue
                    torch._dynamo.reset()
                    torch.cuda.empty_cache()
                    try:
                        first, seconds, out, peak_bytes = timed(build(), image, args.repeats)
                    except Exception as exc:  # a row's failure (e.g. out of memory) is a result, not a crash
                        row["skipped"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        rows.append(row)
                        save(result, args.out)
                        print(f"{model} {name} {spec['label']}: {row['skipped']}", file=sys.stderr, flush=True)
                        continue
                    if reference is None:
                        reference = out
                    row.update(first_call_seconds=first, seconds=seconds, images_per_second=1 / seconds,
                               tflops=flops / seconds / 1e12, peak_bytes=peak_bytes,
                               peak_share=None if peak is None else flops / seconds / 1e12 / peak,
                               psnr_vs_fp32=compare._psnr(np.asarray(out), reference))
                    if spec.get("official_tile") == 0:
                        official_speed = row["images_per_second"]
                    if "images_per_second" in row:
                        row["vs_official"] = None if official_speed is None else row["images_per_second"] / official_speed
                    rows.append(row)
                    save(result, args.out)
                    print(f"{model} {name} {spec['label']}: {row['images_per_second']:.2f} img/s, "
                          f"{row['tflops']:.1f} TFLOP/s, {row['psnr_vs_fp32']:.1f} dB", file=sys.stderr, flush=True)
                for row in rows:  # the reference ran before the official speed was known
                    if row["model"] == model and row["input"] == name and "images_per_second" in row:
                        row["vs_official"] = None if official_speed is None else row["images_per_second"] / official_speed
    table = save(result, args.out)
    if args.docs is not None:
        write_docs(args.docs, table)
    print(table)
    return 0


def save(result: dict[str, Any], out: Path) -> str:
    """Write ``out`` (JSON) and its ``.md`` sibling with the rows so far; returns the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table)
    return table


if __name__ == "__main__":
    sys.exit(main())
