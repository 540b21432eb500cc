"""Half weights (``Remasterer(half_weights=True)``): a network in the compute precision, run without autocast.

On CUDA that is fp16 weights against fp16 autocast; the same logic runs on the
CPU with bf16 weights (tiny inputs: bf16 is emulated, and slow, on AVX2 CPUs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from remaster import Remasterer, RunContext, Stage, StageInfo, Tiling, io
from remaster.pipeline.devices import CPU_ISA_ENV

_CONV = torch.nn.Conv2d(3, 3, 3, padding=1)
torch.nn.init.normal_(_CONV.weight, 0.0, 0.3, generator=torch.Generator().manual_seed(5))


class HalfNet(Stage):
    """A tiny network stage that honours ``half_weights`` the way the Real-ESRGAN one does."""

    def __init__(self) -> None:
        super().__init__()
        self.info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=2, in_channels=(3,),
                              dtypes=("fp32", "bf16", "fp16"))
        self.net = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.net.load_state_dict(_CONV.state_dict())
        self.prepared: list[tuple[torch.dtype, bool]] = []
        self.seen: list[tuple[torch.dtype, bool]] = []  # (input dtype, autocast on) per call

    def prepare(self, ctx):
        self.prepared.append((ctx.dtype, ctx.half_weights))
        half = ctx.half_weights and ctx.dtype in (torch.bfloat16, torch.float16)
        self.net.to(torch.float32).load_state_dict(_CONV.state_dict())  # exact float32 weights, converted if asked
        self.net.to(ctx.dtype if half else torch.float32)
        self.weights_dtype = ctx.dtype if half else None

    def run(self, pixels, ctx: RunContext):
        if self.weights_dtype is not None:
            pixels = pixels.to(self.weights_dtype)
        self.seen.append((pixels.dtype, torch.is_autocast_enabled("cpu")))
        with torch.no_grad():
            y = torch.sigmoid(self.net(pixels) * 2)
        return F.interpolate(y, scale_factor=2, mode="nearest").float()


def photo(bits: int = 8) -> np.ndarray:
    rng = np.random.default_rng(2)
    array = rng.random((12, 10, 3))
    return np.rint(array * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)


def test_half_weights_run_in_bf16_without_autocast_and_say_so():
    stage = HalfNet()
    remasterer = Remasterer([stage], device="cpu", precision="bf16", tile=0, half_weights=True)
    result = remasterer.run_image(io.load(photo()))
    assert stage.prepared[-1] == (torch.bfloat16, True)
    assert stage.net.weight.dtype == torch.bfloat16
    assert stage.seen == [(torch.bfloat16, False)]  # the stage cast; the pipeline added no autocast
    assert result.meta.extras["stages"][0] == {"stage": "halfnet", "device": "cpu", "precision": "bf16",
                                                "weights": "bf16"}


def test_without_half_weights_the_network_stays_float32_under_autocast():
    stage = HalfNet()
    result = Remasterer([stage], device="cpu", precision="bf16", tile=0).run_image(
        io.load(photo()))
    assert stage.net.weight.dtype == torch.float32
    assert stage.seen == [(torch.float32, True)]
    assert "weights" not in result.meta.extras["stages"][0]


def test_half_weights_agree_with_autocast_and_fp32_within_rounding():
    image = photo()
    fp32 = Remasterer([HalfNet()], device="cpu", precision="fp32", tile=0).run(image)
    autocast = Remasterer([HalfNet()], device="cpu", precision="bf16", tile=0).run(image)
    half = Remasterer([HalfNet()], device="cpu", precision="bf16", tile=0, half_weights=True).run(image)
    for other in (autocast, half):
        assert np.abs(other.astype(int) - fp32.astype(int)).max() <= 3  # bf16 keeps 8 bits of mantissa


def test_a_deep_image_goes_back_to_exact_float32_weights(monkeypatch):
    monkeypatch.setenv(CPU_ISA_ENV, "AVX512-BF16")  # auto picks bf16 for 8-bit images, fp32 for 16-bit ones
    stage = HalfNet()
    remasterer = Remasterer([stage], device="cpu", precision="auto", tile=0, half_weights=True)
    remasterer.run(photo(8))
    deep = remasterer.run(photo(16))
    assert [dtype for dtype, _ in stage.prepared] == [torch.bfloat16, torch.float32]
    assert stage.seen[-1] == (torch.float32, False)
    assert np.array_equal(deep, Remasterer([HalfNet()], device="cpu", precision="fp32", tile=0).run(photo(16)))


def test_fp32_ignores_half_weights():
    stage = HalfNet()
    result = Remasterer([stage], device="cpu", precision="fp32", tile=0, half_weights=True).run_image(
        io.load(photo()))
    assert stage.net.weight.dtype == torch.float32 and "weights" not in result.meta.extras["stages"][0]


def test_a_stage_that_ignores_half_weights_keeps_the_autocast():
    class Plain(HalfNet):
        def prepare(self, ctx):  # an older stage: float32 weights whatever was asked
            self.weights_dtype = None

    stage = Plain()
    Remasterer([stage], device="cpu", precision="bf16", tile=0, half_weights=True).run(photo())
    assert stage.seen == [(torch.float32, True)]


@pytest.mark.parametrize("tile", [0, 8])
def test_sub_pipelines_inherit_half_weights(tile):
    seen = {}

    class Outer(Stage):
        def __init__(self):
            super().__init__()
            self.info = StageInfo(scale=2, in_channels=(3,))

        def prepare(self, ctx):
            self.inner = ctx.pipeline([HalfNet()])
            seen["half_weights"] = self.inner.half_weights

        def run(self, pixels, ctx):
            return self.inner.run(pixels)

    Remasterer([Outer()], device="cpu", precision="fp32", tile=tile, half_weights=True).run(photo())
    assert seen == {"half_weights": True}
