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


def faces() -> None:
    """What the gfpgan stage does before and after its network: Haar detection, landmarks, alignment."""
    from remaster_gfpgan import geometry
    from remaster_gfpgan.detectors import HaarDetector

    photo = data.astronaut()
    image = photo.astype(np.float32) / 255.0
    face = HaarDetector().detect(image, min_size=16)[0]
    x0, y0, x1, y1 = face.box
    pad = 40
    left, top = max(0, int(x0) - pad), max(0, int(y0) - pad)
    crop = Image.fromarray(photo[top:int(y1) + pad, left:int(x1) + pad])
    draw = ImageDraw.Draw(crop)
    draw.rectangle((x0 - left, y0 - top, x1 - left, y1 - top), outline=(255, 255, 0), width=2)
    for x, y in face.landmarks:
        draw.ellipse((x - left - 3, y - top - 3, x - left + 3, y - top + 3), fill=(255, 0, 0))
    aligned = geometry.crop_face(image, geometry.alignment_matrix(face.landmarks))
    aligned_img = Image.fromarray((aligned * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(aligned_img)
    for x, y in geometry.FFHQ_TEMPLATE:
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=(0, 255, 0), width=2)
    labelled([("Haar box + 5 estimated landmarks", np.asarray(crop)),
              ("aligned 512x512 (green: FFHQ template)", np.asarray(aligned_img))], 320).save(DOCS / "faces.png")


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    interpolators()
    degraders()
    upscalers()
    faces()
    print(f"wrote {DOCS}/interpolators.png, degraders.png, upscalers.png and faces.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
