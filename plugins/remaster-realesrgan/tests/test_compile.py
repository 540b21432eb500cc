"""The Real-ESRGAN stage compiled (``--compile``): traced through spandrel, one fixed window, same pixels.

``aot_eager`` traces with dynamo and AOT autograd as inductor does but generates no code, so this stays quick;
inductor itself is exercised on a tiny network in tests/test_compile.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer, io
from remaster.pipeline.tiling import fixed_window_size

MODEL = "realesr-animevideov3"


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_compiled_stage_gives_the_eager_pixels():
    overlap = Remasterer(MODEL, device="cpu").stages[0].info.tile_overlap
    side = fixed_window_size(32, overlap)
    image = np.tile(data.astronaut()[100:160, 180:240], (2, 2, 1))[:side, :side].copy()  # exactly one window
    eager = Remasterer(MODEL, device="cpu", precision="fp32", tile=0).run(image)
    result = Remasterer(MODEL, device="cpu", precision="fp32", tile=32, compile="on",
                        compile_backend="aot_eager").run_image(io.load(image))
    ran = result.meta.extras["stages"][0]
    assert ran["compiled"] == "aot_eager" and ran["compile_seconds"] > 0 and "compile_failed" not in ran
    assert np.abs(io.to_numpy(result).astype(int) - eager.astype(int)).max() <= 1


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_inductor_on_the_gpu_in_fp16_gives_the_eager_pixels_within_rounding():
    image = np.tile(data.astronaut(), (2, 2, 1))[:600, :600].copy()  # larger than one 584-pixel window
    eager = Remasterer(MODEL, device="cuda", precision="fp16", tile=512).run(image)
    result = Remasterer(MODEL, device="cuda", precision="fp16", tile=512, compile="on").run_image(io.load(image))
    ran = result.meta.extras["stages"][0]
    assert ran["compiled"] == "inductor" and ran["compile_seconds"] > 0
    # Eager batches four tiles, compiled runs them one by one on 584-pixel windows: fp16 rounding apart, the same
    # (the bound of tests/test_cuda.py for fp16 against fp32).
    mse = np.mean((io.to_numpy(result).astype(np.float64) - eager.astype(np.float64)) ** 2)
    assert mse == 0 or 10 * np.log10(255.0**2 / mse) >= 35


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_cached_artifact_gives_the_eager_pixels_within_45_db(tmp_path, monkeypatch, precision):
    # compile="on" with the "export" format: the same export, cache and loading as AOTInductor's packages, quick.
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path))
    image = data.astronaut()[100:230, 180:357].copy()  # 130 x 177: padded to 144 x 192 for the artifact
    eager = Remasterer(MODEL, device="cpu", precision=precision, compile="off").run(image)
    built = Remasterer(MODEL, device="cpu", precision=precision, compile="on", compile_backend="export")
    result = built.run_image(io.load(image))
    ran = result.meta.extras["stages"][0]
    assert ran["compiled"] == "export" and ran["precision"] == precision and ran["artifact"].endswith(".pt2")
    assert result.pixels.shape[-2:] == (520, 708)
    mse = np.mean((io.to_numpy(result).astype(np.float64) - eager.astype(np.float64)) ** 2)
    assert mse == 0 or 10 * np.log10(255.0**2 / mse) >= 45


def test_the_artifact_key_follows_the_weights_file(tmp_path):
    from remaster.weights import get_manager, sha256_file

    stage = Remasterer(MODEL, device="cpu", precision="fp32").stages[0].instance(
        torch.device("cpu"), torch.float32)
    target = stage.compile_target()
    path = stage.network_file(get_manager())
    assert target is not None and target.identity.endswith(sha256_file(path))
    assert isinstance(target.network(), torch.nn.Module)


def test_a_run_served_by_a_cached_artifact_never_imports_spandrel(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(data.astronaut()[:48, :64].copy()).save(source)
    env = {**os.environ, "REMASTER_CACHE": str(tmp_path / "cache")}
    weights = Path(os.environ["REMASTER_CACHE"]) / "weights"  # the session's converted weights, not made again
    if weights.is_dir():
        shutil.copytree(weights, tmp_path / "cache" / "weights")
    code = ("import sys\nfrom remaster.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print('spandrel' in sys.modules)\nsys.exit(code)")
    command = [sys.executable, "-c", code, "upscale", str(source), "-o", str(tmp_path / "out.png"), "--model", MODEL,
               "--device", "cpu", "--precision", "fp32", "--compile-backend", "export", "--overwrite", "-q"]
    built = subprocess.run([*command, "--compile", "on"], capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    served = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip().splitlines()[-1] == "False"  # the default, auto, found the artifact
    eager = subprocess.run([*command, "--compile", "off"], capture_output=True, text=True, env=env, timeout=300)
    assert eager.returncode == 0 and eager.stdout.strip().splitlines()[-1] == "True"
