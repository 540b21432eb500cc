"""Folder throughput against the pipeline's own throughput on the same, already decoded images (issue 15).

    .venv/bin/python benchmarks/folder_throughput.py [--images 50] [--model realesr-animevideov3]
                                                     [--precision auto] [--rounds 1] [--write]

Makes ``--images`` JPEG photos of 480x320 (crops of ``skimage.data`` pictures, quality 90), then, in one
process and on one prepared pipeline, alternating each round:

* ``pipeline only``: ``Remasterer.run_for_file`` on the images decoded beforehand (no reading, no writing);
* ``folder, overlapped``: :func:`remaster.runs.local.run_items`, what ``remaster upscale DIR -o OUT`` runs;
* ``folder, sequential``: read, run and write each image in turn (``Remasterer.run_file``), the loop before.

Outputs are JPEG (the inputs' format, the CLI's default), or PNG with ``--format png``. The figure of merit is folder images/s over
pipeline-only images/s; the target is >= 90%. Measure on a quiet machine: the load average before and after
is printed. ``--write`` replaces the "Folder throughput" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = {None: ("<!-- folder:begin -->", "<!-- folder:end -->"),
           "jpg": ("<!-- folder:begin -->", "<!-- folder:end -->"),
           "png": ("<!-- folder-png:begin -->", "<!-- folder-png:end -->")}
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_sections import publish  # noqa: E402
from startup import cpu, load  # noqa: E402  (the machine line and load average, as the other tables give them)


def make_photos(folder: Path, count: int) -> None:
    """``count`` distinct 480x320 JPEGs cut from skimage's colour pictures."""
    from PIL import Image
    from skimage import data

    pictures = [Image.fromarray(getattr(data, name)()).convert("RGB")
                for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")]
    folder.mkdir(parents=True)
    for index in range(count):
        picture = pictures[index % len(pictures)]
        scale = 1.0 + 0.15 * (index // len(pictures) % 4)
        big = picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.LANCZOS)
        left = (index * 37) % max(1, big.width - 480)
        top = (index * 23) % max(1, big.height - 320)
        if big.width < 480 or big.height < 320:
            big = big.resize((max(480, big.width), max(320, big.height)), Image.LANCZOS)
            left = top = 0
        big.crop((left, top, left + 480, top + 320)).save(folder / f"photo{index:03d}.jpg", quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--format", choices=["jpg", "png"], default=None,
                        help="output format (default: the inputs', JPEG; PNG encodes far slower)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    from remaster import Remasterer, io
    from remaster.runs.plan import collect_inputs, plan_outputs
    from remaster.pipeline.devices import describe_device
    from remaster.runs.local import run_items

    load_before = load()
    work = Path(tempfile.mkdtemp(prefix="remaster-folder-"))
    try:
        make_photos(work / "in", args.images)
        remasterer = Remasterer([args.model], device=args.device, precision=args.precision).prepare()
        decoded = [io.load(path) for path, _ in collect_inputs([str(work / "in")])]
        targets = [item.target for item in plan_outputs(collect_inputs([str(work / "in")]), work / "model",
                                                        args.format)]
        remasterer.run_for_file(decoded[0], targets[0])  # warm-up: first-call allocations out of the timings
        times: dict[str, list[float]] = {"pipeline only": [], "folder, overlapped": [], "folder, sequential": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            for image, target in zip(decoded, targets):
                remasterer.run_for_file(image, target)
            times["pipeline only"].append(time.perf_counter() - started)

            for name, out in (("folder, overlapped", "overlapped"), ("folder, sequential", "sequential")):
                shutil.rmtree(work / out, ignore_errors=True)
                items = plan_outputs(collect_inputs([str(work / "in")]), work / out, args.format)
                started = time.perf_counter()
                if out == "overlapped":
                    failed = [item for item in run_items(remasterer, items) if not item.ok]
                else:
                    failed = []
                    for item in items:
                        remasterer.run_file(item.source, item.target)
                times[name].append(time.perf_counter() - started)
                if failed or len(list((work / out).iterdir())) != args.images:
                    raise SystemExit(f"{name}: not every image was written: {[i.error for i in failed]}")
        plan = remasterer.describe()
        device = describe_device(remasterer.device)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = load()

    best = {name: min(values) for name, values in times.items()}
    rate = {name: args.images / seconds for name, seconds in best.items()}
    command = "python benchmarks/folder_throughput.py " + " ".join(sys.argv[1:])
    output = "PNG" if args.format == "png" else "JPEG"
    lines = [
        "## Folder throughput" + (", PNG outputs" if args.format == "png" else ""),
        "",
        f"`{command.strip()}` on {datetime.date.today()}: {args.images} JPEG photos of 480×320 → 1920×1280 {output}, "
        f"`{plan}` on {device}. Machine: {cpu()}; load average {load_before} before, {load_after} after; "
        f"best of {args.rounds} round(s), the three runs alternating in one process on one prepared pipeline.",
        "",
        "| run | seconds | images/s | of pipeline-only |",
        "|---|---|---|---|",
    ]
    for name in times:
        lines.append(f"| {name} | {best[name]:.1f} | {rate[name]:.3f} | "
                     f"{100 * rate[name] / rate['pipeline only']:.1f}% |")
    lines += ["", "*Pipeline only* runs the same pipeline on images decoded beforehand and writes nothing; "
                  "*overlapped* is `remaster.runs.local.run_items` (what `remaster upscale DIR -o OUT` runs: decoding "
                  "ahead and writing behind the network); *sequential* reads, runs and writes each image in turn "
                  "(`Remasterer.run_file` in a loop). Target: overlapped ≥ 90% of pipeline-only."]
    text = "\n".join(lines)
    publish(*MARKERS[args.format], text, args.write)
    print(f"spread: {({k: [round(v, 1) for v in vs] for k, vs in times.items()})}; "
          f"median overlapped/pipeline {statistics.median(times['pipeline only']) / statistics.median(times['folder, overlapped']):.3f}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("REMASTER_LOG", "warning")
    raise SystemExit(main())
