"""Time from process start to the first output of ``remaster upscale small.png -o out.png``, and where it goes.

    .venv/bin/python benchmarks/first_output.py [--before OTHER_CHECKOUT/.venv/bin/python [--before-label L]]
                                                [--repeats 5] [--write]

With the default upscaler's weights cached (made once before timing), each interpreter runs, ``--repeats`` times
and alternating so that a busy moment hits all alike:

* ``python -c pass`` and ``python -c "import torch"`` (the issue's target: first output <= import torch + 1 s);
* the whole command, ``remaster upscale small.png -o out.png`` on a 64x64 PNG, as its console script runs it
  (``remaster.cli.program``, or ``main()`` in a checkout without it) in a fresh process, exit included;
* the same command with ``--compile off`` (checkouts with ``--compile auto|on|off``: the default then runs the
  image's compiled artifact, built once before timing with ``--compile on``, and never imports spandrel);
* a breakdown in a fresh process that does what the command does, in its order, with a clock between the steps:
  the CLI and the plugin host, ``import torch``, the pipeline object, ``prepare()`` (weights checked), and the first
  image read, run (the artifact loaded, or spandrel imported and the network built) and written.

Every process uses a cache of the run's own (the converted weights copied in) with background compiles off.

Medians are given. ``--write`` replaces the "First output" section of docs/benchmarks.md. Measure on a quiet
machine: the load average at the start and end is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- first-output:begin -->", "<!-- first-output:end -->"
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_sections import publish  # noqa: E402
from startup import cpu, load  # noqa: E402

# What the console script runs: program() where the checkout has it (main() and a quick exit), else main().
CLI = ("import sys\nsys.argv = ['remaster', *sys.argv[1:]]\ntry:\n    from remaster.cli import program\n"
       "except ImportError:\n    from remaster.cli import main\n    sys.exit(main())\nprogram()")
STEPS = r"""
import json, sys, time
clock = [("start", time.perf_counter())]
def step(name):
    clock.append((name, time.perf_counter()))
from remaster.cli.main import build_parser
parser = build_parser()
args = parser.parse_args(["upscale", sys.argv[1], "-o", sys.argv[2], "--overwrite", "-q"])
step("CLI and plugin host")
import torch
step("import torch")
from remaster import Remasterer
from remaster.pipeline import default_upscaler
from remaster.plugin.host import get_host
remasterer = Remasterer([default_upscaler(get_host())])
step("pipeline built (no network yet)")
remasterer.prepare()
step("prepare: weights checked (the network is built on first use)")
remasterer.run_file(sys.argv[1], sys.argv[2], overwrite=True)
step("first image read, run (artifact loaded, or spandrel imported and the network built) and written")
print(json.dumps([(name, t - clock[0][1]) for name, t in clock[1:]]))
"""


#: Every timed process: the weights in a cache of this run's own, no background compile (the artifact for the image,
#: where the checkout has artifacts, is built once before timing).
ENV: dict[str, str] = {}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd="/tmp", env=ENV or None)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}... failed: {done.stderr[-2000:]}")
    return seconds


def steps(python: str, image: Path, out: Path) -> list[tuple[str, float]]:
    done = subprocess.run([python, "-c", STEPS, str(image), str(out)], capture_output=True, text=True, timeout=600,
                          cwd="/tmp", env=ENV or None)
    if done.returncode != 0:
        raise SystemExit(f"breakdown failed: {done.stderr[-2000:]}")
    return [tuple(pair) for pair in json.loads(done.stdout.strip().splitlines()[-1])]  # type: ignore[misc]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="PYTHON", help="the interpreter of another checkout, measured alike")
    parser.add_argument("--before-label", default="before", help="the heading of its column (default: before)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    work = Path(tempfile.mkdtemp(prefix="remaster-first-"))
    image, out = work / "small.png", work / "out.png"
    Image.fromarray(data.astronaut()).resize((64, 64), Image.LANCZOS).save(image)
    pythons = {"after": sys.executable}
    if args.before:
        pythons = {args.before_label: args.before, **pythons}
    cache = work / "cache"
    (cache / "weights").mkdir(parents=True)
    for made in (Path.home() / ".cache/remaster/weights").glob("*.safetensors"):  # converted once already
        shutil.copy(made, cache / "weights" / made.name)
    ENV.update(os.environ, REMASTER_CACHE=str(cache), REMASTER_COMPILE_BACKGROUND="0")
    for python in pythons.values():  # weights made and cached, files warm in the page cache
        timed([python, "-c", CLI, "upscale", str(image), "-o", str(out), "--overwrite", "-q"])
    # The compiled artifact for this image, where the checkout has them (--compile on builds it; older ones fail).
    compiled = {label: subprocess.run([python, "-c", CLI, "upscale", str(image), "-o", str(out), "--overwrite", "-q",
                                       "--compile", "on"], capture_output=True, env=ENV, cwd="/tmp").returncode == 0
                for label, python in pythons.items()}
    load_before = load()
    results: dict[str, dict[str, list[float]]] = {label: {} for label in pythons}
    breakdowns: dict[str, list[list[tuple[str, float]]]] = {label: [] for label in pythons}
    for _ in range(args.repeats):
        for label, python in pythons.items():
            row = results[label]
            row.setdefault("python -c pass", []).append(timed([python, "-c", "pass"]))
            row.setdefault("import torch", []).append(timed([python, "-c", "import torch"]))
            row.setdefault("remaster upscale small.png -o out.png", []).append(
                timed([python, "-c", CLI, "upscale", str(image), "-o", str(out), "--overwrite", "-q"]))
            if compiled[label]:
                row.setdefault("... --compile off", []).append(
                    timed([python, "-c", CLI, "upscale", str(image), "-o", str(out), "--overwrite", "-q",
                           "--compile", "off"]))
            breakdowns[label].append(steps(python, image, out))
    load_after = load()

    lines = ["## First output", "",
             f"`python benchmarks/first_output.py {shlex.join(sys.argv[1:])}`".replace(" `", "`") +
             f" on {datetime.date.today()}: median of {args.repeats}, each a fresh process, the default upscaler's "
             f"weights cached, a 64×64 PNG; the default `--compile auto` with the image's compiled artifact "
             f"cached (built once before timing; background builds off). Machine: {cpu()}; load average "
             f"{load_before} before, {load_after} after.", "",
             "| | " + " | ".join(pythons) + " |", "|---|" + "---|" * len(pythons)]
    for name in results["after"]:
        lines.append(f"| {name} | " + " | ".join(f"{statistics.median(results[label][name]):.2f} s"
                                                 if name in results[label] else "-" for label in pythons) + " |")
    lines += ["", "Where the command's time goes (seconds since the interpreter started running the script, median "
              "per step; the interpreter's own start is the `python -c pass` row):", "",
              "| step | " + " | ".join(pythons) + " |", "|---|" + "---|" * len(pythons)]
    names = [name for name, _ in breakdowns["after"][0]]
    for index, name in enumerate(names):
        cells = []
        for label in pythons:
            ends = [run[index][1] for run in breakdowns[label]]
            starts = [run[index - 1][1] if index else 0.0 for run in breakdowns[label]]
            cells.append(f"{statistics.median(e - s for e, s in zip(ends, starts)):.2f} s")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    after = {name: statistics.median(values) for name, values in results["after"].items()}
    target = after["import torch"] + 1.0
    lines += ["", f"Target (issue 15): first output ≤ `import torch` + 1 s = {target:.2f} s; measured "
                  f"{after['remaster upscale small.png -o out.png']:.2f} s."]
    text = "\n".join(lines)
    publish(BEGIN, END, text, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
