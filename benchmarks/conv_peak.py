"""How close remaster's CPU path comes to the machine's measured convolution peak, in fp32 and bf16 (issue 15).

    .venv/bin/python benchmarks/conv_peak.py [--model realesrgan-x4plus] [--size 128] [--repeats 3] [--write]

In one process, 2 threads, channels_last, each timing a median of ``--repeats`` after a warm-up:

* the *peak*: one 3×3 convolution of the network's widest shape (192 → 64 channels, Real-ESRGAN's dense block) on a
  ``--size`` feature map, fp32 and bf16 (bf16 as remaster runs it: under autocast with float32 weights);
* the network as the stage runs it (``Remasterer([model], precision=..., tile=0).run_image``), whole, on a
  ``--size`` crop; its FLOPs are counted with hooks on its convolutions (2 per multiply-add, as
  compare_realesrgan_gpu.py counts them).

bf16 rows are measured only where the CPU runs bf16 natively (AVX512-BF16 or AMX): emulated bf16 is no peak.
``--write`` replaces the "Convolution peak" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- conv-peak:begin -->", "<!-- conv-peak:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_realesrgan_gpu import conv_flops  # noqa: E402
from doc_sections import publish  # noqa: E402
from startup import cpu, load  # noqa: E402


def median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from skimage import data

    from remaster import Remasterer, io
    from remaster.pipeline.devices import cpu_supports_fast_bf16, describe_device

    torch.set_num_threads(2)
    load_before = load()
    precisions = ["fp32"] + (["bf16"] if cpu_supports_fast_bf16() else [])
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 192, args.size, args.size, generator=generator).contiguous(memory_format=torch.channels_last)
    w = torch.rand(64, 192, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
    peak_flops = 2 * 64 * 192 * 9 * args.size * args.size
    crop = np.asarray(Image.fromarray(data.astronaut()).crop((120, 40, 120 + args.size, 40 + args.size)))
    image = io.load(crop)
    rows = []
    for precision in precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16

        def conv() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                F.conv2d(x, w, padding=1)

        peak = peak_flops / median_seconds(conv, max(5, args.repeats))
        remasterer = Remasterer([args.model], device="cpu", precision=precision, tile=0).prepare()
        network = remasterer.stages[0].instance(torch.device("cpu"), dtype)
        flops = conv_flops(network.descriptor.model, args.size, args.size, "cpu")
        seconds = median_seconds(lambda: remasterer.run_image(image), args.repeats)
        rows.append((precision, peak, flops, seconds))
    load_after = load()

    lines = ["## Convolution peak", "",
             f"`python benchmarks/conv_peak.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f" on {datetime.date.today()}: {describe_device(torch.device('cpu'))}. Machine: {cpu()}; load average "
             f"{load_before} before, {load_after} after. *Peak*: one 3×3 convolution, 192 → 64 channels on a "
             f"{args.size}×{args.size} map, channels_last (bf16: autocast, as remaster runs it); *network*: "
             f"{args.model} whole on a {args.size}×{args.size} crop through the pipeline, its convolutions' FLOPs "
             "(2 per multiply-add) over its wall time.", "",
             "| precision | peak GFLOP/s | network GFLOP | network s | network GFLOP/s | % of peak |",
             "|---|---|---|---|---|---|"]
    for precision, peak, flops, seconds in rows:
        achieved = flops / seconds
        lines.append(f"| {precision} | {peak / 1e9:.0f} | {flops / 1e9:.1f} | {seconds:.2f} | {achieved / 1e9:.0f} | "
                     f"{100 * achieved / peak:.0f}% |")
    if len(precisions) == 1:
        lines += ["", "No bf16 row: this CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated)."]
    text = "\n".join(lines)
    publish(BEGIN, END, text, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
