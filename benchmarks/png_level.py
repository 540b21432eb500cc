"""What PNG's zlib level costs per written image, and what it saves: why remaster writes PNGs at level 1.

    .venv/bin/python benchmarks/png_level.py [--images 12] [--levels 1,6,9] [--write]

Makes ``--images`` photos of 480x320 as benchmarks/folder_throughput.py does, upscales each 4x with
Pillow's Lanczos to 1920x1280 (standing in for a network's output: smooth, photo-like detail), and
encodes every one as an 8-bit RGB PNG at each level with Pillow's ``compress_level``, the option
remaster's writer sets. Per level: the median seconds per image and the mean size, alternating levels
image by image so that a busy moment hits all alike. Single-threaded (zlib); measure on a quiet machine.
``--write`` replaces the "PNG compression level" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- png-level:begin -->", "<!-- png-level:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_sections import publish  # noqa: E402
from folder_throughput import make_photos  # noqa: E402  (the same photos as the folder table)
from startup import cpu, load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--levels", default="1,6,9", help="comma-separated zlib levels (default 1,6,9)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]

    from PIL import Image

    load_before = load()
    seconds: dict[int, list[float]] = {level: [] for level in levels}
    sizes: dict[int, list[int]] = {level: [] for level in levels}
    with tempfile.TemporaryDirectory(prefix="remaster-png-") as work:
        make_photos(Path(work) / "in", args.images)
        for photo in sorted((Path(work) / "in").glob("*.jpg")):
            with Image.open(photo) as small:
                big = small.convert("RGB").resize((small.width * 4, small.height * 4), Image.LANCZOS)
            for level in levels:
                buffer = io.BytesIO()
                started = time.perf_counter()
                big.save(buffer, "PNG", compress_level=level)
                seconds[level].append(time.perf_counter() - started)
                sizes[level].append(buffer.tell())
    load_after = load()

    reference = levels[0]
    rows = ["| zlib level | seconds per image (median) | MiB per image (mean) | size against level "
            f"{reference} |", "|---|---|---|---|"]
    for level in levels:
        size = statistics.mean(sizes[level])
        rows.append(f"| {level} | {statistics.median(seconds[level]):.3f} | {size / (1 << 20):.2f} | "
                    f"{size / statistics.mean(sizes[reference]):.0%} |")
    command = "python benchmarks/png_level.py" + (f" --images {args.images}" if args.images != 12 else "") + \
        (f" --levels {args.levels}" if args.levels != "1,6,9" else "") + (" --write" if args.write else "")
    text = "\n".join([
        "## PNG compression level", "",
        f"`{command}` on {time.strftime('%Y-%m-%d')}: {args.images} photos of 480×320 upscaled 4× to 1920×1280 "
        "(Pillow Lanczos), each encoded as 8-bit RGB PNG at each zlib level (Pillow's `compress_level`, what "
        f"remaster's writer sets). Machine: {cpu()}; load average {load_before} before, {load_after} after.", "",
        *rows, "",
        "remaster writes PNGs at level 1, OpenCV's default and so what Real-ESRGAN's scripts write: on a folder "
        "run the encoder at Pillow's default of 6 takes longer than realesr-animevideov3 on this CPU (see the PNG "
        "folder table). Smaller files, when wanted, are better had afterwards from a PNG optimiser.",
    ])
    publish(BEGIN, END, text, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
