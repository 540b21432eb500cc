"""Peak memory of huge upscales against the size of the final integer image (issue 15's target).

    .venv/bin/python benchmarks/memory.py [--tile 256] [--x4plus] [--write]
    .venv/bin/python benchmarks/memory.py --x4plus-only [--tile 128] [--precisions bf16,fp32] [--write]

Each case runs in a fresh subprocess on the CPU (fp32 unless ``--precisions`` says) and reports its peak RSS (``VmHWM`` of
``/proc/self/status``), once per path:

* ``float``: the path every run took before integer results: ``run_image`` makes the full-size
  float32 result and ``io.save`` quantises it (what ``run_file`` did);
* ``integer``: ``Remasterer.run_file``, where the last stage writes each finished band of rows
  straight into the final uint8 image.

The input is ``skimage.data.astronaut()`` resized with Pillow and written as PNG; the output is PNG.
Target: peak RSS <= 2 x the final uint8 image + 1.2 GB. ``--x4plus`` adds realesrgan-x4plus at
2000x1500 (about 30 minutes on a 2-core CPU); ``--x4plus-only`` runs that case alone, in each of
``--precisions``, with the working memory of one tile's window at tiles 128, 192 and 256 beside it.
``--write`` replaces the "Memory on huge images" section (or, with ``--x4plus-only``, its x4plus
section) of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from startup import load  # noqa: E402  (the load average, as the other tables give it)
BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
X4_BEGIN, X4_END = "<!-- memory-x4plus:begin -->", "<!-- memory-x4plus:end -->"
CASES = [("realesr-animevideov3", 1000, 750), ("realesr-animevideov3", 2000, 1500)]
X4PLUS = ("realesrgan-x4plus", 2000, 1500)
SLACK = 1.2e9


def child(model: str, width: int, height: int, path: str, tile: int, folder: str, precision: str = "fp32") -> None:
    """One case, in this (fresh) process; prints a JSON line."""
    import numpy as np
    from PIL import Image as PILImage
    from skimage import data

    from remaster import Remasterer, io

    source, target = Path(folder) / "in.png", Path(folder) / "out.png"
    PILImage.fromarray(data.astronaut()).resize((width, height), PILImage.BICUBIC).save(source)
    remasterer = Remasterer([model], device="cpu", precision=precision, tile=tile)
    remasterer.prepare()
    started = time.perf_counter()
    if path == "float":
        io.save(remasterer.run_image(io.load(source)), target)
    else:
        remasterer.run_file(source, target)
    seconds = time.perf_counter() - started
    with PILImage.open(target) as written:
        out_w, out_h = written.size
        channels = len(written.getbands())
    peak = _status_bytes("VmHWM")
    print(json.dumps({"peak": peak, "seconds": seconds, "out": [out_w, out_h], "precision": precision,
                      "final": out_w * out_h * channels * np.dtype(np.uint8).itemsize}))


def run_case(model: str, width: int, height: int, path: str, tile: int, precision: str = "fp32") -> dict:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, __file__, "--child", model, str(width), str(height), path, str(tile),
                               folder, precision], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{model} {width}x{height} {path} {precision} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags |= set(line.partition(":")[2].split())
    return " ".join(sorted(flag for flag in ("avx2", "avx512_bf16", "amx_bf16") if flag in flags)) or "none"


def table(rows: list[tuple[str, int, int, str, dict]], tile: int) -> str:
    mib = 1 << 20
    lines = ["| model | input | output | path | precision | tile | time s | peak RSS MiB | final uint8 MiB | "
             "target MiB | peak / target |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, width, height, path, result in rows:
        target = 2 * result["final"] + SLACK
        lines.append(f"| {model} | {width}x{height} | {result['out'][0]}x{result['out'][1]} | {path} | "
                     f"{result.get('precision', 'fp32')} | {tile} | "
                     f"{result['seconds']:.1f} | {result['peak'] / mib:.0f} | {result['final'] / mib:.0f} | "
                     f"{target / mib:.0f} | {result['peak'] / target:.2f} |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, width, height, path, tile, folder, precision = sys.argv[2:9]
        child(model, int(width), int(height), path, int(tile), folder, precision)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--window-child":
        window_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=256, help="tile size in input pixels (default 256)")
    parser.add_argument("--x4plus", action="store_true", help="also realesrgan-x4plus at 2000x1500 (~30 min)")
    parser.add_argument("--x4plus-only", action="store_true",
                        help="only realesrgan-x4plus at 2000x1500, integer path (~30 min); --write puts its row in a "
                             "section of its own, after the one above")
    parser.add_argument("--precisions", default="fp32",
                        help="with --x4plus-only: comma-separated precisions, one run each (default fp32)")
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    if args.x4plus_only:
        return x4plus_only(args.tile, args.precisions.split(","), args.write)
    rows = []
    for model, width, height in CASES + ([X4PLUS] if args.x4plus else []):
        for path in ("float", "integer"):
            result = run_case(model, width, height, path, args.tile)
            rows.append((model, width, height, path, result))
            print(f"{model} {width}x{height} {path}: peak {result['peak'] / (1 << 20):.0f} MiB, "
                  f"{result['seconds']:.1f} s", flush=True)
    command = "python benchmarks/memory.py" + (f" --tile {args.tile}" if args.tile != 256 else "") + \
        (" --x4plus" if args.x4plus else "") + (" --write" if args.write else "")
    section = "\n".join([
        BEGIN, "## Memory on huge images", "",
        f"`{command}`, {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
        f"{os.cpu_count()} cores, CPU flags (`grep -o 'avx2\\|avx512_bf16\\|amx_bf16' /proc/cpuinfo | sort -u`): "
        f"{cpu_flags()}; no GPU used. fp32 on the CPU, tile {args.tile}, PNG in and out. Each row is one fresh "
        "process; *peak RSS* is its `VmHWM`. *float*: `run_image` + `io.save` (the full-size float32 result, "
        "then quantised: what every run did before); *integer*: `run_file`, whose last stage writes finished "
        "bands of rows straight into the uint8 image. *Target*: 2 x the final uint8 image + 1.2 GB.", "",
        table(rows, args.tile), END])
    print(section)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        doc.write_text(text)
    return 0


def x4plus_only(tile: int, precisions: list[str], write: bool) -> int:
    """realesrgan-x4plus 2000x1500 -> 8000x6000 on the integer path alone, in a section of its own, with the
    working memory of one tile's window beside it (what decides which tile keeps a run within the target)."""
    model, width, height = X4PLUS
    load_before = load()
    windows = [(precision, side, window_peak(model, precision, side))
               for precision in precisions for side in WINDOW_TILES]
    for precision, side, result in windows:
        print(f"window of tile {side} {precision}: +{result['working'] / (1 << 20):.0f} MiB", flush=True)
    rows = []
    for precision in precisions:
        result = run_case(model, width, height, "integer", tile, precision)
        print(f"{model} {width}x{height} {precision} tile {tile}: peak {result['peak'] / (1 << 20):.0f} MiB, "
              f"{result['seconds']:.1f} s", flush=True)
        rows.append((model, width, height, "integer", result))
    load_after = load()
    command = "python benchmarks/memory.py --x4plus-only" + (f" --tile {tile}" if tile != 256 else "") + \
        (f" --precisions {','.join(precisions)}" if precisions != ["fp32"] else "") + (" --write" if write else "")
    mib = 1 << 20
    working = ["| precision | tile | window (input px) | working memory of one window, MiB | process before it, MiB |",
               "| --- | --- | --- | --- | --- |"]
    working += [f"| {precision} | {side} | {result['window']}x{result['window']} | {result['working'] / mib:.0f} | "
                f"{result['base'] / mib:.0f} |" for precision, side, result in windows]
    section = "\n".join([
        X4_BEGIN, "### realesrgan-x4plus, 2000x1500 -> 8000x6000", "",
        f"`{command}`, {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, the machine "
        f"above (CPU flags {cpu_flags()}), load average {load_before} at the start, {load_after} at the end: the "
        f"integer path only (the float path holds the full-size float32 result besides: "
        f"{width * 4 * height * 4 * 3 * 4 / mib:.0f} MiB). Time is wall time and grows with the load.", "",
        table(rows, tile), "",
        "What one tile costs: the peak RSS of one forward pass over a tile's window (the tile and the 24 + 12 pixels "
        "of context and feather band on each side), above the same prepared process after a warm-up pass (`VmHWM` "
        "reset through `/proc/self/clear_refs`), each in a fresh process. The process itself (torch's CUDA build, "
        "spandrel, the network) is the last column.", "",
        "\n".join(working), X4_END])
    print(section)
    if write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        if X4_BEGIN in text:
            text = text[:text.index(X4_BEGIN)] + section + text[text.index(X4_END) + len(X4_END):]
        else:
            text = text[:text.index(END) + len(END)] + "\n\n" + section + text[text.index(END) + len(END):]
        doc.write_text(text)
    return 0


#: Tile sizes whose window's working memory the x4plus section reports.
WINDOW_TILES = (128, 192, 256)


def window_peak(model: str, precision: str, tile: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--window-child", model, precision, str(tile)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{model} window of tile {tile} {precision} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def window_child(model: str, precision: str, tile: int) -> None:
    """One untiled forward pass over the window the tiler gives a ``tile``-pixel tile, in this (fresh) process."""
    import torch

    from remaster import Image, Remasterer
    from remaster.pipeline import tiling
    from remaster_realesrgan.plugin import TILE_OVERLAP

    remasterer = Remasterer([model], device="cpu", precision=precision, tile=0)
    remasterer.prepare()
    side = tiling.fixed_window_size(tile, TILE_OVERLAP)  # the default feather band is half the overlap
    generator = torch.Generator().manual_seed(0)
    remasterer.run_image(Image(pixels=torch.rand((1, 3, 32, 32), generator=generator)))  # warm-up
    window = Image(pixels=torch.rand((1, 3, side, side), generator=generator))
    base = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    remasterer.run_image(window)
    print(json.dumps({"window": side, "base": base, "working": _status_bytes("VmHWM") - base}))


def _status_bytes(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


if __name__ == "__main__":
    raise SystemExit(main())
