"""Scale factors compose: a pipeline's output size is round(input size × the product of its factors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from remaster import Remasterer, RunContext, Stage, StageInfo, Tiling


def expected(size: tuple[int, int], factors: list[float]) -> tuple[int, int]:
    product = math.prod(factors)
    return max(1, round(size[0] * product)), max(1, round(size[1] * product))


@pytest.mark.parametrize("height, width", [(427, 641), (425, 643), (77, 99)])
def test_down_then_up_by_the_inverse_gives_the_input_size_back(height, width):
    """Issue 12, item 5: 641×427 came back 640×428, 643×425 as 644×424, 99×77 as 100×76."""
    img = np.zeros((height, width, 3), np.uint8)
    out = Remasterer(["degrade.downsample(scale=0.25)", "bicubic(scale=4)"]).run(img)
    assert out.shape == (height, width, 3)


FACTORS = st.sampled_from([0.25, 0.3, 0.5, 0.75, 1.5, 2.0, 3.0, 4.0, 1 / 3])
METHODS = st.sampled_from(["nearest", "bilinear", "bicubic", "lanczos"])


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40), factors=st.lists(FACTORS, min_size=1, max_size=3),
       methods=st.lists(METHODS, min_size=3, max_size=3))
def test_any_chain_of_resizers_composes(height, width, factors, methods):
    stages = [f"{method}(scale={factor!r})" for factor, method in zip(factors, methods)]
    remasterer = Remasterer(stages, device="cpu", precision="fp32")
    want = expected((height, width), factors)
    assume_small = want[0] * want[1] <= 200 * 200
    if not assume_small:
        return
    out = remasterer.run(np.zeros((height, width), np.uint8))
    assert out.shape == want
    assert remasterer.plan(height, width, 1)[:2] == want


class FixedX2(Stage):
    """A network-like stage: always exactly twice its input, whatever the plan says."""

    name = "fixed-x2"
    info = StageInfo(scale=2.0, tiling=Tiling.UNSUPPORTED)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return pixels.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def test_a_fixed_scale_stage_after_a_rounding_one_is_resampled_to_the_plan():
    # 426 × 0.25 = 106.5 → 106 px, and the network makes 2 × 106 = 212; the plan is round(426 × 0.5) = 213.
    img = np.zeros((426, 641, 3), np.uint8)
    out = Remasterer(["degrade.downsample(scale=0.25)", FixedX2()]).run(img)
    assert out.shape[:2] == (213, 320) == expected((426, 641), [0.25, 2.0])


def test_a_stage_that_ignores_the_planned_size_is_still_accepted_and_resampled():
    class OldStyleResize(Stage):
        """Written before ctx.out_size existed: rounds its own size."""

        name = "old-style"
        info = StageInfo(scale_param="scale", tiling=Tiling.UNSUPPORTED)

        def run(self, pixels, ctx):
            from remaster.pipeline.stage import scaled_size
            from remaster.stages.interpolate import resize

            return resize(pixels, scaled_size(pixels.shape[-2], pixels.shape[-1], self.params["scale"]), "bilinear")

    stage = OldStyleResize(scale=4.0)
    img = np.zeros((427, 641, 3), np.uint8)
    out = Remasterer(["degrade.downsample(scale=0.25)", stage]).run(img)
    assert out.shape == img.shape


def test_the_planned_size_is_what_a_stage_is_asked_for():
    asked = []

    class Spy(Stage):
        name = "spy"
        info = StageInfo(scale_param="scale", tiling=Tiling.UNSUPPORTED)

        def run(self, pixels, ctx):
            asked.append(ctx.out_size)
            return torch.nn.functional.interpolate(pixels, size=ctx.out_size)

    Remasterer(["degrade.downsample(scale=0.25)", Spy(scale=4.0)]).run(np.zeros((427, 641, 3), np.uint8))
    assert asked == [(427, 641)]
