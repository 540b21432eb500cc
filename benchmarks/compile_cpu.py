"""Compiled artifacts on the CPU against eager (issue 24): per tile as % of the convolution peak, and a folder of photos
end to end with ``--compile off`` against the default, first-ever and later runs.

    .venv/bin/python benchmarks/compile_cpu.py [--models realesrgan-x4plus,realesr-animevideov3] [--size 160]
                                               [--photos 12] [--repeats 3] [--skip-folder] [--write]

Per tile (one process, 2 threads, the precision ``auto`` picks here, a ``--size`` crop: one window, no padding),
median of ``--repeats`` warm runs each:

* *peak*: one 3x3 convolution, 192 -> 64 channels, on a ``--size`` map (as benchmarks/conv_peak.py);
* *torch eager*: the spandrel network called directly under autocast, channels_last (plain PyTorch);
* *remaster off*: ``Remasterer(model, compile="off").run_image`` on the crop;
* *remaster compiled*: the same with ``compile="on"`` after its artifact was built (build time reported) and loaded.

Folder (``--photos`` JPEGs of 384x288 cut from skimage's pictures; each command a fresh process, as a user runs
it, ``remaster upscale DIR -o OUT --model realesrgan-x4plus --device cpu --format png``, with a cache of its own
holding only the weights): ``--compile off``; then the default (``auto``) with no artifact (the first-ever run: it
starts the background build); the wait for that build to finish; the default again (second run). The outputs of the
second run are compared with ``--compile off``'s (PSNR, lowest of the photos).

``--write`` replaces the "Compiled artifacts on the CPU" section of docs/benchmarks.md. Measure on a quiet machine:
the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- compile-cpu:begin -->", "<!-- compile-cpu:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_realesrgan_gpu import conv_flops  # noqa: E402
from conv_peak import median_seconds  # noqa: E402  (the peak is measured as conv_peak.py measures it)
from doc_sections import publish  # noqa: E402
from startup import cpu, load  # noqa: E402


def per_tile(models: list[str], size: int, repeats: int, cache: Path) -> tuple[str, list[str]]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from skimage import data

    from remaster import Remasterer, io
    from remaster.pipeline.devices import autocast_context, cpu_supports_fast_bf16

    torch.set_num_threads(2)
    precision = "bf16" if cpu_supports_fast_bf16() else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 192, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    w = torch.rand(64, 192, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)

    def conv() -> None:
        with torch.inference_mode(), autocast_context(torch.device("cpu"), dtype):
            F.conv2d(x, w, padding=1)

    peak = 2 * 64 * 192 * 9 * size * size / median_seconds(conv, max(5, repeats))
    crop = np.asarray(Image.fromarray(data.astronaut()).crop((120, 40, 120 + size, 40 + size)))
    image = io.load(crop)
    rows = [f"| precision {precision}; peak {peak / 1e9:.0f} GFLOP/s | | | | |",
            "| model | path | s per tile | GFLOP/s | % of peak |", "|---|---|---|---|---|"]
    extra = []
    for model in models:
        eager = Remasterer([model], device="cpu", precision=precision, compile="off").prepare()
        network = eager.stages[0].instance(torch.device("cpu"), dtype).descriptor.model
        flops = conv_flops(network, size, size, "cpu")
        pixels = io.load(crop).pixels.contiguous(memory_format=torch.channels_last)

        def plain(network=network, pixels=pixels) -> None:
            with torch.inference_mode(), autocast_context(torch.device("cpu"), dtype):
                network(pixels)

        timings = {"torch eager": median_seconds(plain, repeats),
                   "remaster off": median_seconds(lambda eager=eager: eager.run_image(image), repeats)}
        os.environ["REMASTER_CACHE"] = str(cache)
        compiled = Remasterer([model], device="cpu", precision=precision, compile="on")
        started = time.perf_counter()
        first = compiled.run_image(image).meta.extras["stages"][0]
        build = time.perf_counter() - started
        assert first.get("compiled") == "inductor", first
        timings["remaster compiled"] = median_seconds(lambda compiled=compiled: compiled.run_image(image), repeats)
        out_c = io.to_numpy(compiled.run_image(image)).astype(np.float64)
        out_e = io.to_numpy(eager.run_image(image)).astype(np.float64)
        mse = float(np.mean((out_c - out_e) ** 2))
        agree = "identical" if mse == 0 else f"{10 * np.log10(255.0 ** 2 / mse):.1f} dB"
        for path, seconds in timings.items():
            achieved = flops / seconds
            rows.append(f"| {model} | {path} | {seconds:.3f} | {achieved / 1e9:.0f} | {100 * achieved / peak:.0f}% |")
        extra.append(f"{model}: building its {size}x{size} {precision} artifact took {build:.1f} s (first image "
                     f"included); compiled vs off on the crop: {agree}; compiled is "
                     f"{timings['remaster off'] / timings['remaster compiled']:.2f}x remaster off and "
                     f"{timings['torch eager'] / timings['remaster compiled']:.2f}x torch eager.")
    return precision, rows + [""] + extra


def make_photos(folder: Path, count: int) -> None:
    """``count`` distinct 384x288 JPEGs cut from skimage's colour pictures."""
    from PIL import Image
    from skimage import data

    pictures = [Image.fromarray(getattr(data, name)()).convert("RGB")
                for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    folder.mkdir(parents=True)
    for index in range(count):
        picture = pictures[index % len(pictures)]
        left = (index * 37) % max(1, picture.width - 384)
        top = (index * 23) % max(1, picture.height - 288)
        picture.crop((left, top, left + 384, top + 288)).save(folder / f"photo{index:03d}.jpg", quality=90)


def folder_runs(photos: int, work: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    source = work / "photos"
    make_photos(source, photos)
    cache = work / "cache"
    (cache / "weights").mkdir(parents=True)
    user_weights = Path(os.environ.get("REMASTER_WEIGHTS_FROM", Path.home() / ".cache/remaster/weights"))
    for name in ("realesrgan-x4plus.ncnn.safetensors",):
        if (user_weights / name).is_file():
            shutil.copy(user_weights / name, cache / "weights" / name)
    env = {**os.environ, "REMASTER_CACHE": str(cache), "REMASTER_COMPILE_BACKGROUND": "1"}
    env.pop("REMASTER_CPU_ISA", None)

    def upscale(out: str, *flags: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "remaster.cli", "upscale", str(source), "-o", str(work / out),
                        "--model", "realesrgan-x4plus", "--device", "cpu", "--format", "png", "--quiet", *flags],
                       check=True, env=env)
        return time.perf_counter() - started

    upscale("warm", "--compile", "off")  # the weights checked and pinned once; page cache warm; nothing compiled
    shutil.rmtree(work / "warm")
    off = upscale("off", "--compile", "off")
    first = upscale("first")
    waited = time.perf_counter()
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        listed = json.loads(subprocess.run([sys.executable, "-m", "remaster.cli", "cache", "list", "--json"],
                                           capture_output=True, text=True, env=env, check=True).stdout)
        if listed:
            break
        time.sleep(2)
    waited = time.perf_counter() - waited
    second = upscale("second")
    off_again = upscale("off-again", "--compile", "off")
    worst = min(_psnr(np.asarray(Image.open(work / "second" / p.name), np.float64),
                      np.asarray(Image.open(work / "off" / p.name), np.float64))
                for p in sorted((work / "off").iterdir()))
    build = ", ".join(f"{r['stage']} {'x'.join(map(str, r['shape']))} {r['precision']} in {r['build_seconds']:.0f} s"
                      for r in listed)
    return ["| run | seconds | vs --compile off |", "|---|---|---|",
            f"| `--compile off` | {off:.1f} | 1.00x |",
            f"| default, first-ever run (no artifact; starts the build) | {first:.1f} | {off / first:.2f}x |",
            f"| default, second run (artifact cached) | {second:.1f} | {off / second:.2f}x |",
            f"| `--compile off` again | {off_again:.1f} | {off / off_again:.2f}x |", "",
            f"Background build ({build}, at the lowest priority; on a machine whose cores the run's threads all "
            f"take, it starts once the run has ended): ready {waited:.0f} s after the first run ended. Second run "
            f"against `--compile off`, lowest PSNR of the "
            f"{photos} photos: {worst:.1f} dB."]


def _psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0 ** 2 / mse))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory() as work:
        precision, tile_rows = per_tile(args.models.split(","), args.size, args.repeats, Path(work) / "tile-cache")
        folder = [] if args.skip_folder else folder_runs(args.photos, Path(work) / "folder")
    load_after = load()
    import torch

    lines = ["## Compiled artifacts on the CPU", "",
             f"`python benchmarks/compile_cpu.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f" on {datetime.date.today()}, torch {torch.__version__}. Machine: {cpu()}; load average {load_before} "
             f"before, {load_after} after. Per tile: a {args.size}x{args.size} crop (one window), 2 threads, "
             f"{precision} (what `auto` picks here), warm, median of {args.repeats}.", "", *tile_rows]
    if folder:
        lines += ["", f"A folder of {args.photos} photos (384x288 JPEGs) through realesrgan-x4plus, `remaster "
                      "upscale DIR -o OUT --model realesrgan-x4plus --device cpu --format png`, each run a fresh "
                      "process "
                      "(start-up included):", "", *folder]
    publish(BEGIN, END, "\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
