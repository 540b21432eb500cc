"""The pipeline: parsing, chain checks, conversions back, alpha, gray, padding, tiling, contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from remaster import (
    ImageTooLargeError,
    OutputError,
    Remasterer,
    RunContext,
    Stage,
    StageCall,
    StageContractError,
    StageError,
    StageInfo,
    StageParamError,
    Tiling,
    UnknownStageError,
    UsageError,
    parse_pipeline,
    parse_stage,
)


def random_rgb(height=23, width=17, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# -- parsing ------------------------------------------------------------------

def test_parse_stage_strings():
    assert parse_stage("bicubic") == StageCall("bicubic", {})
    assert parse_stage(" degrade.jpeg(quality=30) ") == StageCall("degrade.jpeg", {"quality": 30})
    assert tuple(parse_stage("degrade.downsample(scale=0.25, method=area)")) == (
        "degrade.downsample", {"scale": 0.25, "method": "area"})
    assert parse_stage("x(flag=True, name='a|b')") == StageCall("x", {"flag": True, "name": "a|b"})
    assert parse_pipeline("a | b(x=1) | c(s='p|q')") == [StageCall("a", {}), StageCall("b", {"x": 1}),
                                                          StageCall("c", {"s": "p|q"})]


@pytest.mark.parametrize("text", ["bicubic(2)", "bicubic(scale=)", "bicubic(scale=2", "a||b", "bicubic(scale=f(1))"])
def test_malformed_stage_strings_are_usage_errors(text):
    with pytest.raises(UsageError):
        Remasterer(text)


def test_unknown_stage_and_parameters_fail_before_any_work():
    with pytest.raises(UnknownStageError, match="did you mean"):
        Remasterer("bicubik")
    with pytest.raises(StageParamError, match="valid parameters: scale"):
        Remasterer("bicubic(sclae=2)")
    with pytest.raises(StageParamError, match="not a valid float"):
        Remasterer("bicubic(scale=big)")


# -- the acceptance example and conversions back ----------------------------

def test_downsample_then_bicubic_returns_a_pil_image_of_the_same_size():
    pil = PILImage.fromarray(random_rgb(64, 48))
    out = Remasterer(["degrade.downsample(scale=0.25)", "bicubic(scale=4)"]).run(pil)
    assert isinstance(out, PILImage.Image)
    assert out.size == pil.size and out.mode == "RGB"


def test_default_pipeline_is_x4():
    out = Remasterer().run(random_rgb(8, 6))
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("shape, dtype", [((9, 7), np.uint8), ((9, 7, 1), np.uint16), ((9, 7, 3), np.float32),
                                          ((9, 7, 4), np.uint8)])
def test_numpy_in_numpy_out_same_dtype_and_layout(shape, dtype):
    rng = np.random.default_rng(1)
    if dtype == np.float32:
        img = rng.random(shape, dtype=np.float32)
    else:
        img = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    out = Remasterer("nearest(scale=2)").run(img)
    assert out.dtype == img.dtype
    assert out.shape == (18, 14, *shape[2:])
    # Nearest x2 repeats each pixel, so the corner is exact in every depth.
    np.testing.assert_allclose(out[0, 0], img[0, 0], rtol=1e-6)


def test_tensor_in_tensor_out_including_batches():
    x = torch.rand(2, 3, 6, 5)
    out = Remasterer("nearest(scale=2)").run(x)
    assert out.shape == (2, 3, 12, 10) and out.dtype == x.dtype
    torch.testing.assert_close(out[:, :, ::2, ::2], x)
    single = Remasterer("nearest(scale=2)").run(x[0])
    assert single.shape == (3, 12, 10)


def test_grayscale_stays_grayscale_through_an_rgb_only_stage():
    class Brighten(Stage):
        info = StageInfo(in_channels=(3,))

        def run(self, pixels, ctx):
            assert pixels.shape[1] == 3
            return (pixels + 0.1).clamp(0, 1)

    gray = np.full((5, 6), 100, np.uint8)
    out = Remasterer([Brighten()]).run(gray)
    assert out.shape == (5, 6) and out.dtype == np.uint8
    assert int(out[0, 0]) == 100 + round(0.1 * 255)


def test_alpha_is_upscaled_alongside_colour_not_dropped():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, 4:, 3] = 255  # right half opaque
    out = Remasterer("bicubic(scale=2)").run(rgba)
    assert out.shape == (16, 16, 4)
    assert out[:, :6, 3].max() == 0 and out[:, 10:, 3].min() == 255


def test_alpha_through_a_process_stage_runs_the_stage_on_alpha():
    calls = []

    class Recorder(Stage):
        info = StageInfo(scale=2, alpha="process", in_channels=(3,))

        def run(self, pixels, ctx):
            calls.append(pixels.shape[1])
            return torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")

    rgba = np.dstack([random_rgb(5, 5), np.full((5, 5), 77, np.uint8)])
    out = Remasterer([Recorder()]).run(rgba)
    assert calls == [3, 3] and out.shape == (10, 10, 4) and (out[..., 3] == 77).all()


# -- chain checks and limits -------------------------------------------------

def test_channel_mismatch_is_reported_before_any_work():
    ran = []

    class GrayOnly(Stage):
        info = StageInfo(in_channels=(1,))

        def run(self, pixels, ctx):
            ran.append(True)
            return pixels

    with pytest.raises(StageError, match="accepts 1-channel images but stage 'nearest' gives 3"):
        Remasterer(["nearest(scale=1)", GrayOnly()]).run(random_rgb())
    assert not ran


def test_output_size_guard_refuses_before_running():
    with pytest.raises(ImageTooLargeError, match=r"4000x4000 = 16.0 MP"):
        Remasterer("nearest(scale=50)", max_output_pixels=10_000_000).run(random_rgb(80, 80))


def test_fp16_on_the_cpu_is_a_usage_error_before_any_work():
    with pytest.raises(UsageError, match="fp16 is not supported on CPU"):
        Remasterer("bicubic", device="cpu", precision="fp16")


# -- the stage contract held by the pipeline --------------------------------------

@pytest.mark.parametrize("bad_output, message", [
    (lambda x: x[..., :-1, :], "returned shape"),
    (lambda x: (x * 255).to(torch.uint8), "instead of a float tensor"),
    (lambda x: x * float("nan"), "NaN or Inf"),
])
def test_stage_breaking_its_contract_is_a_clear_error(bad_output, message):
    class Broken(Stage):
        name = "broken"

        def run(self, pixels, ctx):
            return bad_output(pixels)

    with pytest.raises(StageContractError, match=message):
        Remasterer([Broken()]).run(random_rgb())


def test_overshoot_is_clamped_and_input_is_not_mutated():
    class Overshoot(Stage):
        def run(self, pixels, ctx):
            return pixels * 3 - 1

    img = torch.rand(3, 9, 9)
    before = img.clone()
    out = Remasterer([Overshoot()]).run(img)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(img, before)


def test_size_requirements_are_met_by_padding_and_cropped_back():
    seen = []

    class NeedsMultipleOf8(Stage):
        info = StageInfo(scale=2, multiple_of=8, min_size=16)

        def run(self, pixels, ctx):
            seen.append(tuple(pixels.shape[-2:]))
            return torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")

    img = random_rgb(5, 19)
    out = Remasterer([NeedsMultipleOf8()], tile=0).run(img)
    assert seen == [(16, 24)]
    assert out.shape == (10, 38, 3)
    np.testing.assert_array_equal(out[::2, ::2], img)


def test_tiled_run_matches_untiled():
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    class Local(Stage):
        info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=4)

        def run(self, pixels, ctx):
            up = torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")
            return torch.sigmoid(conv(up))

    img = torch.rand(3, 70, 45)
    whole = Remasterer([Local()], tile=0).run(img)
    tiled = Remasterer([Local()], tile=32).run(img)
    assert (whole - tiled).abs().max() < 1e-5


class _BoxBlur(Stage):
    """A mean over (2r + 1)^2 pixels: it needs r pixels of context, more than its StageInfo says."""

    info = StageInfo(tiling=Tiling.SUPPORTED, tile_overlap=0)

    def __init__(self, radius):
        super().__init__(radius=radius)
        self.radius = radius
        self.tile_overlap = radius

    def run(self, pixels, ctx):
        r = self.radius
        return torch.nn.functional.avg_pool2d(torch.nn.functional.pad(pixels, (r,) * 4, mode="replicate"),
                                              2 * r + 1, stride=1)


def test_the_built_stage_tile_overlap_wins_over_its_info():
    img = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0))
    whole = Remasterer([_BoxBlur(12)], tile=0).run(img)
    tiled = Remasterer([_BoxBlur(12)], tile=32).run(img)
    assert (whole - tiled).abs().max() < 1e-6  # with StageInfo's overlap of 0, every tile border would show


@pytest.mark.parametrize("overlap", [-1, 2.5, "8", True])
def test_a_bad_tile_overlap_is_the_stage_s_bug(overlap):
    stage = _BoxBlur(2)
    stage.tile_overlap = overlap
    with pytest.raises(StageContractError, match="tile_overlap") as caught:
        Remasterer([stage], tile=16).run(torch.rand(3, 40, 40))
    assert caught.value.path == "_boxblur"


def test_progress_reaches_one_and_reports_are_kept():
    class Reporter(Stage):
        def run(self, pixels, ctx):
            ctx.report["faces"] = 2
            return pixels

    seen = []
    image = Remasterer([Reporter(), "nearest(scale=2)"]).run(_png_bytes(random_rgb()), progress=seen.append)
    assert image.meta.extras["faces"] == 2
    assert [entry["stage"] for entry in image.meta.extras["stages"]] == ["reporter", "nearest(scale=2.0)"]
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_run_file_writes_the_result(tmp_path):
    source = tmp_path / "in.png"
    PILImage.fromarray(random_rgb(10, 12)).save(source)
    written, result = Remasterer("bicubic(scale=2)").run_file(source, tmp_path / "out.png")
    assert PILImage.open(written).size == (24, 20)
    assert result.size == (24, 20)


def test_stage_run_receives_device_and_precision():
    got: list[RunContext] = []

    class Spy(Stage):
        def run(self, pixels, ctx):
            got.append(ctx)
            return pixels

    Remasterer([Spy()], device="cpu", precision="fp32").run(random_rgb())
    assert got[0].device.type == "cpu" and got[0].dtype == torch.float32


def test_identity_stage_does_not_clamp_the_input_pixels_in_place():
    from remaster import Image

    class Identity(Stage):
        def run(self, pixels, ctx):
            return pixels

    pixels = torch.full((1, 3, 5, 5), 0.5)
    pixels[0, 0, 0, 0] = 1.5  # out of range: the clamp must happen on a copy
    result = Remasterer([Identity()]).run_image(Image(pixels))
    assert float(pixels[0, 0, 0, 0]) == 1.5
    assert float(result.pixels[0, 0, 0, 0]) == 1.0


def test_a_stage_that_raises_is_a_stage_error_naming_it():
    class Crashes(Stage):
        name = "crashes"

        def run(self, pixels, ctx):
            raise ZeroDivisionError("plugin bug")

    with pytest.raises(StageError, match="crashes: failed: ZeroDivisionError: plugin bug") as info:
        Remasterer([Crashes()]).run(random_rgb())
    assert isinstance(info.value.__cause__, ZeroDivisionError)  # --debug shows the stage's own traceback


def test_values_far_outside_the_unit_range_are_a_contract_error_not_a_white_image():
    class Scaled255(Stage):
        name = "scaled255"

        def run(self, pixels, ctx):
            return pixels * 255

    with pytest.raises(StageContractError, match=r"scaled255: returned values in \[0, 255\], expected \[0, 1\]"):
        Remasterer([Scaled255()]).run(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8))


def test_a_shape_error_found_by_the_tiler_names_the_stage():
    class Crops(Stage):
        name = "crops"
        info = StageInfo(tiling=Tiling.SUPPORTED)

        def run(self, pixels, ctx):
            return pixels[..., :-1]

    with pytest.raises(StageContractError) as info:
        Remasterer([Crops()], tile=16).run(random_rgb(40, 40))
    assert info.value.path == "crops" and str(info.value).startswith("crops: ")


def test_output_size_guard_message_below_one_megapixel():
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 10,000 pixels \(0.0 MP\)"):
        Remasterer("nearest(scale=8)", max_output_pixels=10_000).run(random_rgb(20, 20))


def test_nan_in_bf16_is_retried_in_fp32(caplog):
    calls = []

    class OverflowsInBf16(Stage):
        name = "overflows"
        info = StageInfo(dtypes=(torch.float32, torch.bfloat16), tiling=Tiling.UNSUPPORTED)

        def run(self, pixels, ctx):
            calls.append(ctx.dtype)
            return pixels * float("nan") if ctx.dtype == torch.bfloat16 else pixels.clone()

    img = random_rgb()
    out = Remasterer([OverflowsInBf16()], precision="bf16").run(img)
    assert calls == [torch.bfloat16, torch.float32]
    np.testing.assert_array_equal(out, img)
    assert "running it again in fp32" in caplog.text


@pytest.mark.parametrize("stage", ["bicubic(scale=4)", "lanczos(scale=3)", "bilinear(scale=0.5)",
                                   "degrade.downsample(scale=0.5)"])
def test_garbage_colour_under_transparent_pixels_does_not_bleed_into_visible_ones(stage):
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 128, 255
    rgba[:, :8, 3] = 0
    rgba[:, :8, :3] = [255, 0, 255]  # magenta left behind by an editor, invisible
    out = Remasterer(stage).run(rgba)
    visible = out[..., 3] > 0
    assert visible.any() and np.abs(out[visible][:, :3].astype(int) - 128).max() <= 1
    np.testing.assert_array_equal(rgba[:, :8, :3], 255 * np.array([1, 0, 1]) * np.ones((16, 8, 3)))  # input untouched


def test_colour_under_transparent_pixels_is_kept_when_nothing_is_resampled():
    rgba = np.random.default_rng(0).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rgba[..., 3] > 128, 255, 0)
    np.testing.assert_array_equal(Remasterer("nearest(scale=1)").run(rgba), rgba)


def test_nearest_keeps_colour_under_transparent_pixels():
    rgba = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rgba[..., 3] > 128, 255, 0)
    np.testing.assert_array_equal(Remasterer("nearest(scale=2)").run(rgba), rgba.repeat(2, 0).repeat(2, 1))


def test_prepare_builds_every_stage_once_before_any_image():
    calls: list[str] = []

    class Counting(Stage):
        def prepare(self, ctx):
            calls.append("prepare")

        def run(self, pixels, ctx):
            calls.append("run")
            return pixels

    remasterer = Remasterer([Counting()], device="cpu", precision="fp32")
    assert remasterer.prepare() is remasterer and calls == ["prepare"]
    remasterer.run(random_rgb())
    remasterer.run(random_rgb())
    assert calls == ["prepare", "run", "run"]


def test_prepare_surfaces_a_stage_that_cannot_be_built():
    class Broken(Stage):
        def prepare(self, ctx):
            raise StageError("weights missing", path="broken")

    with pytest.raises(StageError, match="weights missing"):
        Remasterer([Broken()]).prepare()


def test_a_stage_failing_in_prepare_is_a_stage_error_naming_it():
    class Crashing(Stage):
        def prepare(self, ctx):
            raise RuntimeError("CUDA driver too old")

    with pytest.raises(StageError, match="could not be prepared: RuntimeError: CUDA driver too old") as caught:
        Remasterer([Crashing()]).prepare()
    assert caught.value.path == "crashing"


def test_run_file_refuses_an_existing_target_before_any_work(tmp_path):
    ran: list[bool] = []

    class Spy(Stage):
        def run(self, pixels, ctx):
            ran.append(True)
            return pixels

    source = tmp_path / "in.png"
    PILImage.fromarray(random_rgb(10, 12)).save(source)
    with pytest.raises(OutputError, match="would overwrite the input"):
        Remasterer([Spy()]).run_file(source, source)
    (tmp_path / "out.png").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        Remasterer([Spy()]).run_file(source, tmp_path / "out.png")
    assert ran == [] and (tmp_path / "out.png").read_bytes() == b"keep me"


@pytest.mark.parametrize("name", ["bicubic", "/models/4x Community (v2).pth", "C:/x/a|b.pth", "it's.pth"])
def test_format_stage_round_trips_through_parse_stage(name):
    from remaster import format_stage

    params = {"scale": 2.0, "background": "realesrgan-x4plus(scale=2.0)"}
    assert tuple(parse_stage(format_stage(name, params))) == (name, params)
    assert parse_stage(format_stage(name)) == StageCall(name, {})
    assert parse_pipeline(f"{format_stage(name, params)} | nearest") == [StageCall(name, params), StageCall("nearest")]
    assert str(StageCall(name, params)) == format_stage(name, params)


class _HalfwayReporter(Stage):
    """Reports 0.5 from inside each call, records whether it was given a progress callback."""

    info = StageInfo(scale=1, alpha="process", in_channels=(3,))

    def __init__(self):
        super().__init__()
        self.given: list[bool] = []

    def run(self, pixels, ctx):
        self.given.append(ctx.progress is not None)
        if ctx.progress is not None:
            ctx.progress(0.5)
        return pixels.clone()


def test_a_stage_reports_its_own_progress_only_when_it_gets_the_whole_image():
    whole = _HalfwayReporter()
    seen: list[float] = []
    Remasterer([whole], tile=0).run(random_rgb(40, 40), progress=seen.append)
    assert whole.given == [True] and seen == [0.5, 1.0]

    tiled = _HalfwayReporter()
    seen = []
    Remasterer([tiled], tile=64).run(random_rgb(200, 200), progress=seen.append)
    assert len(tiled.given) > 1 and not any(tiled.given)  # per tile the tiler reports, not the stage
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_colour_and_alpha_each_take_half_of_a_process_stage_progress():
    stage = _HalfwayReporter()
    seen: list[float] = []
    rgba = np.dstack([random_rgb(20, 20), np.full((20, 20), 90, np.uint8)])
    Remasterer([stage], tile=0).run(rgba, progress=seen.append)
    assert stage.given == [True, True]
    assert seen == [0.25, 0.75, 1.0]  # colour half-way, alpha half-way, done


def test_an_exception_from_the_progress_callback_stops_the_run_unchanged():
    class Stop(Exception):
        pass

    def cancel(fraction):
        if fraction > 0:
            raise Stop("user pressed cancel")

    for stage, tile in ((_HalfwayReporter(), 0), ("nearest(scale=2)", 64)):  # from inside a stage, from the tiler
        with pytest.raises(Stop, match="user pressed cancel"):
            Remasterer([stage], tile=tile).run(random_rgb(200, 200), progress=cancel)


# -- what prepare() is handed ---------------------------------------------------

class _ContextProbe(Stage):
    """Records the PrepareContext it is prepared with, and builds a pipeline of its own there."""

    seen: list = []

    def prepare(self, ctx):
        inner = ctx.pipeline(["private.inner"])  # a stage only the private host has
        type(self).seen.append((ctx, inner, ctx.weights.path("private-weights")))

    def run(self, pixels, ctx):
        return pixels


class _Identity(Stage):
    def run(self, pixels, ctx):
        return pixels


def _private_host():
    from remaster import StageKind, StageSpec, hookimpl
    from remaster.plugin.host import PluginHost
    from remaster.weights import WeightsSpec

    class PrivatePlugin:
        @hookimpl
        def remaster_register_stages(self, register):
            register(StageSpec(name="private.probe", kind=StageKind.FILTER, factory=_ContextProbe))
            register(StageSpec(name="private.inner", kind=StageKind.FILTER, factory=_Identity))

        @hookimpl
        def remaster_register_weights(self, register):
            register(WeightsSpec(name="private-weights", filename="private.pth"))

    return PluginHost(load_entry_points=False, extra_plugins=(PrivatePlugin(),)).ensure_loaded()


def test_prepare_gets_the_remasterers_own_host_weights_and_limits(monkeypatch):
    monkeypatch.setattr(_ContextProbe, "seen", [])
    host = _private_host()
    Remasterer(["private.probe"], host=host, device="cpu", precision="fp32", tile=48, max_pixels=12_345,
               max_output_pixels=67_890).prepare()
    [(ctx, inner, weights_file)] = _ContextProbe.seen
    assert ctx.host is host
    assert ctx.weights.registry is host.weights and weights_file.name == "private.pth"
    assert (ctx.device, ctx.dtype, ctx.precision) == (torch.device("cpu"), torch.float32, "fp32")
    # The stage's own pipeline takes its stages from the same host and keeps the device and limits.
    assert inner.host is host and inner.device == torch.device("cpu")
    assert (inner.tile, inner.max_pixels, inner.max_output_pixels) == (48, 12_345, 67_890)


