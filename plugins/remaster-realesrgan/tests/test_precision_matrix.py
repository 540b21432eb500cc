"""Every Real-ESRGAN family the plugin runs, at fp32 and at bf16, forced (never "auto").

The host's own choice must not decide what is tested: ``--precision auto`` picks
bf16 on AVX512-BF16/AMX CPUs and fp32 elsewhere, where bf16 is emulated and very
slow (x4plus on a 64 px input took over 9 minutes on such a machine). So each
case is tiny (8 to 16 px inputs), and a network too deep for that is replaced by
a stand-in of its layout: the packaged x4plus weights cut to 2 of their 23 RRDB
blocks (x4plus, x2plus, a model file by path), and random weights in
general-x4v3's exact layout (its weights are not packaged; x2plus's neither).
Full x4plus on 8x8 pixels takes 3 s in bf16 here even with oneDNN disabled
and ATEN_CPU_CAPABILITY=default (a rough model of a CPU without bf16, faster
than the real thing), against 0.3 s for the cut one. The stand-ins go through
the very stage code the real files do: imported under the official weights
names into a private cache for the registered stages, or given by path.

bf16 against fp32, tolerance: autocast rounds each convolution's inputs and
weights to bf16's 8 significant bits (up to 2^-9 relative) and accumulates in
fp32; the errors add up over the tens of convolutions of these networks.
Measured here (AMD EPYC with AVX512-BF16, torch 2.14; ``pytest -s`` prints
each case): at most 0.0067 and 0.0018 on average on the [0, 1] scale, about 2
and 0.5 levels of 255, for the real networks and the stand-ins alike. The bar
(0.03 and 0.005) leaves 3-4x room for other CPUs' kernels; a network that
really broke in bf16 (overflow, garbage) is off by far more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer
from remaster.plugin.host import get_host
from remaster.weights import get_manager, load_state_dict, sha256_file

PRECISIONS = ("fp32", "bf16")
MAX_DIFF, MEAN_DIFF = 0.03, 0.005


def photo(height: int, width: int) -> np.ndarray:
    """A float32 crop of skimage's astronaut (face and suit: edges, skin, flat areas)."""
    return np.ascontiguousarray(data.astronaut()[100:100 + height, 180:180 + width]).astype(np.float32) / 255.0


def upscale(stage: str, image: np.ndarray, precision: str) -> np.ndarray:
    return Remasterer([stage], device="cpu", precision=precision, tile=0).run(image)


def check_output(out: np.ndarray, shape: tuple[int, ...]) -> None:
    assert out.shape == shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 0.02  # an image, not a constant (a stand-in that learnt nothing would give one)


def check_close_to_fp32(out: np.ndarray, reference: np.ndarray) -> None:
    diff = np.abs(out - reference)
    print(f"bf16 vs fp32: max {diff.max():.4f}, mean {diff.mean():.5f}")  # pytest -s shows them
    assert diff.max() <= MAX_DIFF and diff.mean() <= MEAN_DIFF, (diff.max(), diff.mean())
    assert diff.max() > 0.0  # bf16 really ran (no silent fp32, no fp32 retry after NaN)


# -- stand-ins -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x4plus_cut() -> dict[str, torch.Tensor]:
    """The packaged x4plus weights with 2 of the 23 RRDB blocks: x4plus's layout, real filters, 1/10 the work."""
    state = load_state_dict(get_manager().ensure("realesrgan-x4plus"))  # the session cache, before any private one
    return {k: v for k, v in state.items() if not k.startswith("body.") or int(k.split(".")[1]) < 2}


def x2plus_from(x4plus: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RealESRGAN_x2plus's layout (pixel-unshuffle by 2 into the x4 RRDBNet) with the x4 network's filters.

    Each colour's first-layer weights are shared out over its four unshuffled sub-pixels, so the network
    sees the 2x2 mean of the input: an x2 upscaler with real-looking activations.
    """
    state = dict(x4plus)
    first = state["conv_first.weight"]  # (64, 3, 3, 3); unshuffled channel c * 4 + k is colour c
    state["conv_first.weight"] = first.repeat_interleave(4, dim=1) / 4.0
    return state


def general_x4v3_random() -> dict[str, torch.Tensor]:
    """realesr-general-x4v3's exact layout (SRVGGNetCompact, 64 features, 32 convolutions) with random weights.

    The compact network adds its residual to the nearest-upscaled input, so even random weights give an image.
    """
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu").state_dict()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, torch.Tensor]], None]:
    """Put a stand-in into a private weights cache under an official weights name, for this test only."""
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    registry = get_host().weights

    def put(name: str, state: dict[str, torch.Tensor]) -> None:
        spec = registry.get(name)
        file = tmp_path / spec.filename
        torch.save({"params_ema": state}, file)  # as the official .pth releases are
        # Stands in for the official file: same layout, not the published hash.
        monkeypatch.setitem(registry._specs, name, dataclasses.replace(spec, sha256=sha256_file(file)))
        get_manager().import_file(file, name=name)

    return put


# -- the matrix ----------------------------------------------------------------------------------

#: registered stage, input (height, width), output scale: the packaged (real) weights.
PACKAGED = [
    pytest.param("realesr-animevideov3", (16, 16), 4, id="animevideov3"),
    pytest.param("realesrgan-x4plus-anime", (8, 8), 4, id="x4plus-anime-6B"),
]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("stage", "size", "scale"), PACKAGED)
def test_packaged_network(stage, size, scale, precision):
    image = photo(*size)
    out = upscale(stage, image, precision)
    check_output(out, (size[0] * scale, size[1] * scale, 3))
    if precision != "fp32":
        check_close_to_fp32(out, upscale(stage, image, "fp32"))


#: registered stage, official weights name, stand-in, input size, output scale.
STAND_INS = [
    pytest.param("realesrgan-x4plus", "realesrgan-x4plus-official", lambda cut: cut, (8, 8), 4, id="x4plus"),
    # odd sizes: the pixel-unshuffle network needs even ones, the pipeline pads and crops
    pytest.param("realesrgan-x2plus", "realesrgan-x2plus-official", x2plus_from, (9, 11), 2, id="x2plus"),
    pytest.param("realesr-general-x4v3", "realesr-general-x4v3-official", lambda cut: general_x4v3_random(),
                 (16, 16), 4, id="general-x4v3"),
]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("stage", "weights", "make", "size", "scale"), STAND_INS)
def test_registered_stage_with_a_stand_in(stage, weights, make, size, scale, precision, x4plus_cut, install):
    install(weights, make(x4plus_cut))
    image = photo(*size)
    out = upscale(stage, image, precision)
    check_output(out, (size[0] * scale, size[1] * scale, 3))
    if precision != "fp32":
        check_close_to_fp32(out, upscale(stage, image, "fp32"))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_model_file_given_by_path(precision, x4plus_cut, tmp_path):
    path = tmp_path / "my-x4-model.pth"
    torch.save({"params_ema": x4plus_cut}, path)  # the official release format
    image = photo(8, 8)
    out = upscale(str(path), image, precision)
    check_output(out, (32, 32, 3))
    if precision != "fp32":
        check_close_to_fp32(out, upscale(str(path), image, "fp32"))
