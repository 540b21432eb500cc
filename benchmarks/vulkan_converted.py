"""Model files converted for ncnn and run on Vulkan, against the CPU's fp32 result (correctness, not speed).

Each packaged network's weights file is copied and given as a model file (``--model FILE``), so that it goes
through remaster's ncnn converter rather than the packaged ncnn graph; it then runs on the first Vulkan device
(fp32 and fp16) and on the CPU (fp32), and the PSNR between them is printed with the conversion's time from its
record. On a CPU Vulkan implementation (lavapipe) these are correctness figures only.

    REMASTER_CACHE=$(mktemp -d) .venv/bin/python benchmarks/vulkan_converted.py

Use a fresh cache folder (as above) so that the conversions are made, not found.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from skimage import data

from remaster import Remasterer
from remaster.weights import get_manager, sha256_file

#: (packaged network, side of the astronaut crop): lavapipe is slow, so the deep networks get small crops.
CASES = (("realesr-animevideov3", 48), ("realesrgan-x4plus-anime", 32), ("realesrgan-x4plus", 16))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def main() -> None:
    manager = get_manager()
    with tempfile.TemporaryDirectory() as folder:
        for name, size in CASES:
            model = Path(folder) / f"{name}.safetensors"
            shutil.copyfile(manager.ensure(name), model)
            image = np.ascontiguousarray(data.astronaut()[100:100 + size, 180:180 + size]).astype(np.float32) / 255
            cpu = Remasterer(str(model), device="cpu", precision="fp32").run(image)
            fp32 = Remasterer(str(model), device="vulkan", precision="fp32").run(image)
            fp16 = Remasterer(str(model), device="vulkan", precision="fp16").run(image)
            record = json.loads((manager.folder / "ncnn" / f"{sha256_file(model)}-v1.json").read_text())
            print(f"{name} ({record['architecture']}) as a model file, {size}x{size}: fp32 {psnr(fp32, cpu):.1f} dB, "
                  f"fp16 {psnr(fp16, cpu):.1f} dB against the CPU's fp32; {model.stat().st_size / 2**20:.1f} MiB "
                  f"converted in {record['convert_seconds']} s")


if __name__ == "__main__":
    main()
