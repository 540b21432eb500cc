"""How long the ``remaster`` command takes to start, and whether it imports torch, for one or two checkouts.

    .venv/bin/python benchmarks/startup.py [--before OTHER_CHECKOUT/.venv/bin/python] [--repeats 7] [--write]

Each command (``--help``, ``stages``, ``plugins``, ``weights list``) runs ``--repeats`` times per
interpreter, alternating between the two so that a busy moment hits both alike; the table gives the
median wall time and whether torch was imported. ``--write`` replaces the start-up section of
docs/benchmarks.md (after the marker that compare_realesrgan.py keeps). Measure on a quiet machine: the
load average at the start and end is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["stages"], ["plugins"], ["weights", "list"])
KEEP_MARKER = "<!-- sections below are written by other scripts; compare_realesrgan.py keeps them -->"
BEGIN, END = "<!-- startup:begin -->", "<!-- startup:end -->"
PROBE = ("import sys, contextlib, io\nfrom remaster.cli import main\nsys.argv = ['remaster'] + sys.argv[1:]\n"
         "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
         "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
         "print('torch' in sys.modules)")


def run_once(python: str, args: list[str]) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run([python, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, cwd="/tmp")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args)} failed: {done.stderr}")
    return seconds, done.stdout.strip().splitlines()[-1] == "True"


def cpu() -> str:
    """The CPU's model name and the flags that decide remaster's precision choice."""
    model, flags = platform.processor() or platform.machine(), set()
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
            model = line.partition(":")[2].strip()
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{model} ({len(os.sched_getaffinity(0))} cores; flags: {' '.join(wanted) or 'none of avx2/avx512'}; no GPU used)"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the python of another checkout's venv (e.g. the previous release)")
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    pythons = {"now": sys.executable} | ({args.before_label: args.before} if args.before else {})
    load_start = load()
    results: dict[tuple[str, str], tuple[list[float], bool]] = {}
    for command in COMMANDS:
        for _ in range(args.repeats):
            for label, python in pythons.items():
                seconds, torch = run_once(python, command)
                times, _ = results.setdefault((label, " ".join(command)), ([], torch))
                times.append(seconds)
                results[(label, " ".join(command))] = (times, torch)
    labels = list(pythons)
    lines = [BEGIN, "## CLI start-up", "",
             f"`{' '.join(['python', 'benchmarks/startup.py', *sys.argv[1:]])}`, "
             f"{datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}, "
             f"{cpu()}, Python {platform.python_version()}; load average "
             f"{load_start} at the start, {load()} at the end. Median wall time of {args.repeats} runs of "
             "`python -c 'from remaster.cli import main; main([...])'`, the interpreter's own start included; "
             "runs of the checkouts alternate.", "",
             "| command | " + " | ".join(f"{label}: seconds | {label}: imports torch" for label in labels) + " |",
             "|---|" + "---:|---|" * len(labels)]
    for command in COMMANDS:
        key = " ".join(command)
        cells = []
        for label in labels:
            times, torch = results[(label, key)]
            cells += [f"{statistics.median(times):.2f}", "yes" if torch else "no"]
        lines.append(f"| `remaster {key}` | " + " | ".join(cells) + " |")
    lines.append(END)
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        page = ROOT / "docs" / "benchmarks.md"
        text = page.read_text(encoding="utf-8")
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
        else:
            text = text.rstrip("\n") + ("\n\n" + KEEP_MARKER + "\n" if KEEP_MARKER not in text else "\n") + "\n" + section
        page.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
