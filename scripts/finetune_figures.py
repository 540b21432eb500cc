"""Pictures for docs/finetuning.md and docs/stages.md, from a finished scripts/finetune_claim.py run.

    .venv/bin/python scripts/finetune_figures.py out/finetune-claim-long

Writes docs/images/realesrgan-degradation.png (one crop through degrade.realesrgan with four seeds),
docs/images/finetune-before-after.png (a validation crop: degraded input, pretrained, fine-tuned,
original) and copies the run's curves.png to docs/images/finetune-curves.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from remaster import Remasterer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


def _labelled(panels: list[tuple[str, np.ndarray]], size: int) -> Image.Image:
    sheet = Image.new("RGB", (len(panels) * (size + 8) + 8, size + 30), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, array) in enumerate(panels):
        tile = Image.fromarray(array).resize((size, size), Image.NEAREST)
        sheet.paste(tile, (8 + i * (size + 8), 24))
        draw.text((8 + i * (size + 8), 6), label, fill=(0, 0, 0))
    return sheet


def main(run: Path) -> int:
    val = np.asarray(Image.open(run / "data" / "val" / "chelsea.png").convert("RGB"))
    h, w = val.shape[:2]
    crop = np.ascontiguousarray(val[h // 2 - 64:h // 2 + 64, w // 2 - 64:w // 2 + 64])  # as --val-size crops
    degraded = [Remasterer([f"degrade.realesrgan(seed={seed})"]).run(crop) for seed in range(4)]
    _labelled([("original 128 px", crop)] + [(f"seed {s} (32 px)", d) for s, d in enumerate(degraded)],
              192).save(DOCS / "realesrgan-degradation.png")
    lr = degraded[0]
    pretrained = Remasterer(["realesr-animevideov3"]).run(lr)
    tuned = Remasterer([str(run / "anime" / "best.safetensors")]).run(lr)
    _labelled([("degraded input (x4 nearest)", lr), ("realesr-animevideov3", pretrained),
               ("fine-tuned (best.safetensors)", tuned), ("original", crop)], 256).save(
        DOCS / "finetune-before-after.png")
    shutil.copyfile(run / "anime" / "curves.png", DOCS / "finetune-curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/finetune-claim-long")))
