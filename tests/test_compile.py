"""``Remasterer(compile="on")``: network stages compiled for one fixed tile shape, timed, with an eager fallback.

Compilation is slow, so these are few and small. Most use a counting backend
(it records the graphs it is given and runs them as they are, like
``"eager"``) or ``"aot_eager"``, which exercise dynamo's tracing and the
pipeline's logic without a C++ compiler; one test runs inductor itself.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from remaster import Remasterer, RunContext, Stage, StageInfo, Tiling, UsageError, io
from remaster.pipeline.tiling import fixed_window_size, run_tiled


def _network() -> torch.nn.Module:
    torch.manual_seed(11)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(6, 12, 3, padding=1), torch.nn.PixelShuffle(2), torch.nn.Sigmoid())
    return net.eval().requires_grad_(False)


class TinyNetwork(Stage):
    """A small x2 convolutional network: receptive-field radius 2, so tile_overlap 2 makes tiling exact."""

    compilable = True

    def __init__(self) -> None:
        super().__init__()
        self.info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=2, in_channels=(3,))
        self.net = _network()

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return self.net(pixels)


class CountingBackend:
    """A torch.compile backend that records each graph's input shapes and runs the graph unchanged."""

    __name__ = "counting"

    def __init__(self) -> None:
        self.shapes: list[list[tuple[int, ...]]] = []

    def __call__(self, graph, example_inputs):
        self.shapes.append([tuple(x.shape) for x in example_inputs if isinstance(x, torch.Tensor)])  # weights too
        return graph.forward


def broken_backend(graph, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


def photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 1000 + width)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # each test's compilations are its own
    yield
    torch._dynamo.reset()


def test_one_shape_compiles_for_every_tile_and_image_and_the_time_is_reported():
    backend = CountingBackend()
    remasterer = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on",
                            compile_backend=backend)
    first = remasterer.run_image(io.load(photo(24, 20)))  # several tiles, every window 14 x 14
    second = remasterer.run_image(io.load(photo(30, 16)))  # other tiles, the same window size
    third = remasterer.run_image(io.load(photo(9, 13)))  # smaller than the window: runs eagerly
    side = fixed_window_size(8, 2)
    assert side == 14 and len(backend.shapes) == 1 and (1, 3, side, side) in backend.shapes[0]  # one graph
    ran, again = first.meta.extras["stages"][0], second.meta.extras["stages"][0]
    assert ran["compiled"] == "counting" and ran["compile_seconds"] > 0
    assert again["compiled"] == "counting" and "compile_seconds" not in again  # nothing compiled for it
    assert "compile_seconds" not in third.meta.extras["stages"][0] and third.pixels.shape[-2:] == (18, 26)


@pytest.mark.parametrize("size", [24, 18])
def test_compiled_output_matches_eager_where_no_window_is_padded(size):
    # Tile 8, overlap 2: fixed windows of 14 px. At 24 px they are what eager tiling makes too; at 18 px eager
    # makes 12 px windows and the fixed ones (exactly 14, no padding) only give more context.
    image = photo(size, size)
    eager = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8).run(image)
    compiled = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on",
                          compile_backend="aot_eager").run(image)
    assert np.abs(compiled.astype(int) - eager.astype(int)).max() <= 1  # aot_eager may reorder float ops


@pytest.mark.parametrize("height, width", [(10, 10), (10, 30), (30, 11)])
def test_an_axis_smaller_than_the_window_is_never_padded_so_the_result_is_eagers(height, width):
    image = photo(height, width)
    eager = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8).run(image)
    backend = CountingBackend()
    compiled = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on",
                          compile_backend=backend).run(image)
    assert compiled.shape == eager.shape == (2 * height, 2 * width, 3)
    assert np.array_equal(compiled, eager)  # those windows ran eagerly: nothing at the edge changed
    assert backend.shapes == []


def test_a_failing_compilation_warns_once_and_runs_eagerly(caplog):
    remasterer = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on",
                            compile_backend=broken_backend)
    with caplog.at_level(logging.WARNING, logger="remaster"):
        first = remasterer.run_image(io.load(photo(20, 20)))
        second = remasterer.run_image(io.load(photo(20, 20)))
    warnings = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 1 and "running eagerly" in warnings[0] and "tinynetwork" in warnings[0]
    assert first.meta.extras["stages"][0]["compiled"] == "eager"
    assert first.meta.extras["stages"][0]["compile_failed"] is True
    assert "compile_failed" not in second.meta.extras["stages"][0]
    same_windows = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on",
                              compile_backend=CountingBackend()).run(photo(20, 20))
    assert np.array_equal(io.to_numpy(first), same_windows)


def test_stages_that_are_not_networks_run_as_before():
    image = photo(12, 12)
    plain = Remasterer(["bicubic(scale=2)"], device="cpu", precision="fp32", tile=8).run_image(io.load(image))
    compiled = Remasterer(["bicubic(scale=2)"], device="cpu", precision="fp32", tile=8, compile="on",
                          compile_backend=broken_backend).run_image(io.load(image))
    assert torch.equal(compiled.pixels, plain.pixels)
    assert "compiled" not in compiled.meta.extras["stages"][0]


def test_compile_refuses_a_run_without_tiles():
    with pytest.raises(UsageError, match="fixed size"):
        Remasterer([TinyNetwork()], device="cpu", tile=0, compile="on")


def test_the_fixed_window_holds_for_any_image_size_and_tile():
    seen: set[tuple[int, int]] = set()

    def double(x):
        seen.add(tuple(x.shape[-2:]))
        return F.interpolate(x, scale_factor=2, mode="nearest")

    side = fixed_window_size(10, 3, multiple_of=4)
    for size in (5, 13, 14, 15, 31, 47):
        seen.clear()
        pixels = torch.rand(1, 3, size, size + 3, generator=torch.Generator().manual_seed(size))
        out = run_tiled(double, pixels, scale=2, tile=10, overlap=3, multiple_of=4, fixed_window=True)
        assert torch.allclose(out, F.interpolate(pixels, scale_factor=2, mode="nearest"), atol=1e-6)
        # an axis at least the window long: windows of exactly the window; a shorter one: itself, unpadded
        assert {h for h, _ in seen} == {side if size >= side else size}
        assert {w for _, w in seen} == {side if size + 3 >= side else size + 3}
    with pytest.raises(ValueError):
        run_tiled(double, torch.rand(1, 3, 4, 4), scale=2, tile=0, overlap=0, fixed_window=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="inductor needs a C++ compiler")
def test_inductor_compiles_a_network_stage_on_the_cpu():
    image = photo(16, 16)
    eager = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8).run(image)
    result = Remasterer([TinyNetwork()], device="cpu", precision="fp32", tile=8, compile="on").run_image(
        io.load(image))
    assert result.meta.extras["stages"][0]["compiled"] == "inductor"
    assert "compile_failed" not in result.meta.extras["stages"][0]
    # 16 px, tile 8: two windows of 14 px, none padded; inductor's kernels round differently, by a level at most.
    assert np.abs(io.to_numpy(result).astype(int) - eager.astype(int)).max() <= 1
