"""Produce the before/after figures of docs/finetuning.md.

Domain: the everyday colour photographs that ship with scikit-image (skimage.data), split by image:
training on astronaut, rocket and both views of stereo_motorcycle (a stereo pair, so both stay on the
same side), validation on chelsea and coffee. Two runs of ``remaster finetune``, L1 loss only (the VGG19
weights cannot be downloaded here, and the claim is about PSNR/SSIM):

1. realesr-animevideov3 (compact), first half of its convolutions frozen (``--freeze auto``);
2. realesrgan-x4plus (RRDBNet) with 21 of its 23 RRDB blocks frozen, a short budget (64-pixel patches,
   128-pixel validation crops: this network is ~25x slower per pixel on the CPU).

Validation PSNR/SSIM are computed by ``remaster finetune`` itself at step 0 (the pretrained model) and at
the end, on the same inputs degraded once with Real-ESRGAN's pipeline under a fixed seed.

    .venv/bin/python scripts/finetune_claim.py -o out/finetune-claim-long --anime-steps 1000 --x4plus-steps 200

Writes OUT/claim.md (the table for the docs) and OUT/claim.json, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

TRAIN = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right")
VAL = ("chelsea", "coffee")


def _photo(name: str) -> np.ndarray:
    if name.startswith("motorcycle_"):  # the two views of data.stereo_motorcycle()
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(data, name)()


def _write(names: tuple[str, ...], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.ascontiguousarray(_photo(name)[..., :3])).save(folder / f"{name}.png")


def _uptime() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _run(command: list[str]) -> dict:
    print("$ " + " ".join(f"'{c}'" if " " in c or "," in c else c for c in command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="out/finetune-claim-long")
    parser.add_argument("--anime-steps", type=int, default=1000)
    parser.add_argument("--x4plus-steps", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.output)
    train, val = out / "data" / "train", out / "data" / "val"
    _write(TRAIN, train)
    _write(VAL, val)
    remaster = str(Path(sys.executable).with_name("remaster"))
    common = ["--data", str(train), "--val", str(val), "--losses", "l1=1,perceptual=0,gan=0",
              "--degradation", "realesrgan", "--seed", "0", "--json", "-q"]
    runs = {
        "realesr-animevideov3": [remaster, "finetune", "--model", "realesr-animevideov3", "-o", str(out / "anime"),
                                 "--steps", str(args.anime_steps), "--batch", "4", "--patch", "128",
                                 "--val-every", str(max(1, args.anime_steps // 5)), "--val-size", "256",
                                 "--freeze", "auto", *common],
        "realesrgan-x4plus": [remaster, "finetune", "--model", "realesrgan-x4plus", "-o", str(out / "x4plus"),
                              "--steps", str(args.x4plus_steps), "--batch", "2", "--patch", "64",
                              "--val-every", str(args.x4plus_steps), "--val-size", "128", "--freeze", "21", *common],
    }
    from remaster.evaluation import cpu_model

    results = {}
    for name, command in runs.items():
        before = _uptime()
        started = time.perf_counter()
        summary = _run(command)
        results[name] = {"command": " ".join(command[1:]), "summary": summary, "uptime_before": before,
                         "uptime_after": _uptime(), "wall_s": round(time.perf_counter() - started, 1)}
    machine = f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}; torch threads default"
    lines = [f"Machine: {machine}.", "",
             "| model | trainable / frozen params | steps | wall time | steps/s | val PSNR before → after (dB) "
             "| val SSIM before → after | best step (PSNR) | load average before / after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r["summary"]
        lines.append(
            f"| {name} | {s['trainable_parameters']:,} / {s['frozen_parameters']:,} | {s['step']} | "
            f"{r['wall_s'] / 60:.1f} min | {s['steps_per_second']:.2f} | "
            f"{s['initial']['val_psnr']:.2f} → {s['final']['val_psnr']:.2f} | "
            f"{s['initial']['val_ssim']:.4f} → {s['final']['val_ssim']:.4f} | "
            f"{s['best_step']} ({s['best_val_psnr']:.2f}) | {r['uptime_before']} / {r['uptime_after']} |")
    table = "\n".join(lines) + "\n"
    (out / "claim.md").write_text(table)
    (out / "claim.json").write_text(json.dumps({"machine": machine, "runs": results}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
