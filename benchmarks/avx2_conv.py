"""Where the ncnn runtime's fp32 advantage over torch comes from: convolution algorithm, ISA, threads (issue 15).

    .venv/bin/python benchmarks/avx2_conv.py [--size 128] [--repeats 3] [--model realesrgan-x4plus] [--write]

Each variant runs in a fresh process (2 threads, fp32, the packaged weights, one warm-up call), and the table gives
the median wall and CPU time of ``--repeats`` calls on a ``--size`` crop of ``skimage.data.astronaut``:

* torch as remaster runs it (channels_last), with the machine's own ISA, and capped to AVX2 in that process
  (``ATEN_CPU_CAPABILITY=avx2`` for ATen's kernels, ``ONEDNN_MAX_CPU_ISA=AVX2`` for oneDNN's convolutions): the
  closest this machine comes to an AVX2-only CPU;
* torch contiguous (NCHW) instead of channels_last;
* the ncnn runtime as benchmarks/compare_realesrgan.py runs it, then with Winograd convolution off, then with the
  sgemm (im2col) convolution off as well, which leaves its direct kernels.

The torch profiler's share of the time per operator is printed for the torch run. ``--write`` replaces the
"Convolution algorithms: torch against ncnn" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- conv-algorithms:begin -->", "<!-- conv-algorithms:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_sections import publish  # noqa: E402
from startup import cpu, load  # noqa: E402

NCNN_IDS = {"realesrgan-x4plus": "x4plus", "realesr-animevideov3": "animevideov3-x4"}
VARIANTS = {
    "torch, channels_last (remaster)": ("torch", {"layout": "channels_last"}, {}),
    "torch, channels_last, capped to AVX2": ("torch", {"layout": "channels_last"},
                                            {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    "torch, NCHW": ("torch", {"layout": "contiguous"}, {}),
    "ncnn (as compare_realesrgan.py)": ("ncnn", {"winograd": True, "sgemm": True}, {}),
    "ncnn, no Winograd": ("ncnn", {"winograd": False, "sgemm": True}, {}),
    "ncnn, no Winograd, no sgemm": ("ncnn", {"winograd": False, "sgemm": False}, {}),
}


def child(kind: str, options: dict, model: str, size: int, repeats: int) -> None:
    import resource
    import time

    import numpy as np
    from PIL import Image
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.astronaut()).crop((120, 40, 120 + size, 40 + size)))
    if kind == "torch":
        import torch

        from remaster.plugin.host import get_host
        from remaster.weights import get_manager, load_network

        torch.set_num_threads(2)
        net = load_network(get_manager(get_host()).ensure(model)).model.eval()
        fmt = torch.channels_last if options["layout"] == "channels_last" else torch.contiguous_format
        net = net.to(memory_format=fmt)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).contiguous(memory_format=fmt)

        def call() -> None:
            with torch.inference_mode():
                net(x)
    else:
        import ncnn

        from remaster_realesrgan.ncnn import packaged_models

        param, weights = packaged_models()[NCNN_IDS[model]]
        net = ncnn.Net()
        opt = net.opt
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = opt.use_bf16_packed = False
        opt.use_vulkan_compute = False
        opt.num_threads = 2
        opt.use_winograd_convolution = options["winograd"]
        opt.use_sgemm_convolution = options["sgemm"]
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise SystemExit(f"ncnn could not load {param}")
        planar = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)

        def call() -> None:
            mat = ncnn.Mat(planar)
            extractor = net.create_extractor()
            extractor.input("data", mat)
            ret, _ = extractor.extract("output")
            if ret != 0:
                raise SystemExit(f"ncnn extract failed ({ret})")

    call()  # warm-up: both pick their kernels on the first call
    walls, cpus = [], []
    for _ in range(repeats):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
    profile = None
    if kind == "torch" and options["layout"] == "channels_last" and "ATEN_CPU_CAPABILITY" not in os.environ:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            call()
        events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
        total = sum(t for _, t in events) or 1.0
        profile = [(key, round(100 * t / total, 1)) for key, t in sorted(events, key=lambda e: -e[1])[:6]]
    print(json.dumps({"wall": statistics.median(walls), "cpu": statistics.median(cpus), "profile": profile}))


def conv_micro(repeats: int = 20) -> dict[str, float]:
    """One 3x3 convolution of x4plus's shape (64 -> 32 channels at 128x128), in ms: oneDNN NCHW and channels_last,
    and NNPACK, torch's other CPU convolution (which torch picks only for batches of 16 or more), called directly."""
    import time

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 64, 128, 128, generator=generator)
    w, b = torch.rand(32, 64, 3, 3, generator=generator), torch.rand(32, generator=generator)
    xc = x.contiguous(memory_format=torch.channels_last)
    calls = {"oneDNN, NCHW": lambda: F.conv2d(x, w, b, padding=1),
             "oneDNN, channels_last": lambda: F.conv2d(xc, w, b, padding=1)}
    if torch._nnpack_available():
        calls["NNPACK"] = lambda: torch._nnpack_spatial_convolution(x, w, b, [1, 1, 1, 1])
    result = {}
    with torch.inference_mode():
        for name, call in calls.items():
            call()
            started = time.perf_counter()
            for _ in range(repeats):
                call()
            result[name] = 1e3 * (time.perf_counter() - started) / repeats
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus", choices=sorted(NCNN_IDS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, options, _ = VARIANTS[args.child]
        child(kind, options, args.model, args.size, args.repeats)
        return 0

    load_before = load()
    results = {}
    for name, (_, _, env) in VARIANTS.items():
        done = subprocess.run([sys.executable, __file__, "--child", name, "--model", args.model, "--size",
                               str(args.size), "--repeats", str(args.repeats)], capture_output=True, text=True,
                              timeout=1800, env={**os.environ, **env})
        if done.returncode != 0:
            raise SystemExit(f"{name}: {done.stderr[-2000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    micro = conv_micro()
    load_after = load()
    reference = results["torch, channels_last (remaster)"]["cpu"]
    lines = ["## Convolution algorithms: torch against ncnn", "",
             f"`python benchmarks/avx2_conv.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f" on {datetime.date.today()}: {args.model}, {args.size}×{args.size} → ×4, fp32, 2 threads, median of "
             f"{args.repeats} calls after a warm-up, each variant a fresh process. Machine: {cpu()}; load average "
             f"{load_before} before, {load_after} after. *CPU s* (user + system, all threads) moves less than wall "
             "time when the cores are shared.", "",
             "| variant | wall s | CPU s | CPU time vs remaster's |", "|---|---|---|---|"]
    for name, result in results.items():
        lines.append(f"| {name} | {result['wall']:.2f} | {result['cpu']:.2f} | {result['cpu'] / reference:.2f} |")
    profile = results["torch, channels_last (remaster)"]["profile"]
    if profile:
        lines += ["", "torch's own time by operator (profiler, self CPU time): "
                  + ", ".join(f"`{key}` {share}%" for key, share in profile) + "."]
    lines += ["", "One 3×3 convolution of that network's shape (64 → 32 channels at 128×128, 0.60 GFLOP), mean of 20 "
              "calls in this process: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in micro.items()) + "."]
    text = "\n".join(lines)
    publish(BEGIN, END, text, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
