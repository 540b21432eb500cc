"""Make the pictures in docs/ from images scikit-image ships.

Run: .venv/bin/python scripts/doc_figures.py   (writes docs/images/*.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

from remaster import Remasterer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"


def labelled(images: list[tuple[str, np.ndarray]], size: int) -> Image.Image:
    """Side-by-side panels of equal size with a caption under each."""
    caption = 18
    sheet = Image.new("RGB", (len(images) * (size + 4) + 4, size + caption + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, array) in enumerate(images):
        panel = Image.fromarray(array).resize((size, size), Image.NEAREST)
        x = 4 + index * (size + 4)
        sheet.paste(panel, (x, 4))
        draw.text((x + 2, size + 8), label, fill="black")
    return sheet


def interpolators() -> None:
    crop = data.astronaut()[60:124, 180:244]  # the face, 64x64
    small = Remasterer("degrade.downsample(scale=0.5, method=area)").run(crop)
    panels = [("input (32x32)", small)]
    for name in ("nearest", "bilinear", "bicubic", "lanczos"):
        panels.append((f"{name} x2", Remasterer(f"{name}(scale=2)").run(small)))
    panels.append(("original 64x64", crop))
    labelled(panels, 192).save(DOCS / "interpolators.png")


def degraders() -> None:
    crop = data.astronaut()[60:188, 180:308]  # 128x128
    panels = [("original", crop)]
    for label, pipeline in [
        ("blur(sigma=2)", "degrade.blur(sigma=2)"),
        ("downsample(0.25)", "degrade.downsample(scale=0.25) | nearest(scale=4)"),
        ("noise(sigma=25)", "degrade.noise(sigma=25, seed=1)"),
        ("jpeg(quality=10)", "degrade.jpeg(quality=10)"),
    ]:
        panels.append((label, Remasterer(pipeline).run(crop)))
    labelled(panels, 192).save(DOCS / "degraders.png")


def upscalers() -> None:
    # A 64x64 crop of the astronaut reduced to 256x256 (what `make demo` upscales), enlarged x4.
    small = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS))[40:104, 90:154]
    panels = [("input 64x64 (nearest x4)", Remasterer("nearest(scale=4)").run(small))]
    for label, stage in [("lanczos x4", "lanczos"), ("realesr-animevideov3 x4", "realesr-animevideov3"),
                         ("realesrgan-x4plus x4", "realesrgan-x4plus")]:
        panels.append((label, Remasterer(stage, precision="fp32").run(small)))
    labelled(panels, 256).save(DOCS / "upscalers.png")


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    interpolators()
    degraders()
    upscalers()
    print(f"wrote {DOCS}/interpolators.png, degraders.png and upscalers.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
