"""`make demo`: upscale a photo that scikit-image ships, with the default upscaler (Real-ESRGAN x4plus).

The astronaut is reduced to 256x256 first, a realistic low-resolution input that a
2-core CPU upscales to 1024x1024 in well under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from skimage import data

from remaster.cli import main

OUT = Path(__file__).resolve().parent.parent / "out"


def run() -> int:
    OUT.mkdir(exist_ok=True)
    source = OUT / "astronaut.png"
    target = OUT / "astronaut_x4.png"
    Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS).save(source)
    code = main(["upscale", str(source), "-o", str(target), "--overwrite"])
    if code == 0:
        print(f"demo: input  {source}")
        print(f"demo: result {target}")
    return code


if __name__ == "__main__":
    sys.exit(run())
