"""The packaged models on Vulkan through ncnn (``--device vulkan``), against the CPU's fp32 result.

They run on whatever Vulkan device ncnn sees first; on a machine without a GPU that is Mesa's lavapipe (``make
vulkan-env``), which computes on the CPU: right for correctness, not for speed, so the images are small, the
feature tests run on realesr-animevideov3 and each network is loaded once per module (one pipeline per device and
precision, kept). Without a Vulkan loader, ncnn or any device they skip and say why. The choice of ``auto`` among
simulated devices, the names and bf16 are tests/test_vulkan_devices.py's; here the real plugin answers.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data

from remaster import Remasterer
from remaster import io as rio
from remaster.cli import main
from remaster.errors import UsageError
from remaster_realesrgan import vulkan

#: The bar of issue 25: Vulkan gives the CPU's fp32 result to at least this many dB.
BAR_DB = 45.0
ANIME = "realesr-animevideov3"


def _devices() -> tuple:
    try:
        return vulkan.vulkan_devices()
    except UsageError as exc:
        pytest.skip(f"Vulkan cannot be used here: {exc}", allow_module_level=True)
    return ()


DEVICES = _devices()
if not DEVICES:
    pytest.skip("ncnn sees no Vulkan device (make vulkan-env installs lavapipe)", allow_module_level=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float images in [0, 1] (or two integer images of the same depth, rescaled)."""
    if a.dtype != np.float32 and a.dtype != np.float64:
        peak = float(np.iinfo(a.dtype).max)
        a, b = a / peak, b / peak
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def photo(size: int, top: int = 100, left: int = 180) -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[top:top + size, left:left + size])


@pytest.fixture(scope="module")
def pipelines():
    """Pipelines by (model, device, precision, tile), built once for the module: each network is loaded once."""
    built: dict[tuple, Remasterer] = {}

    def get(model: str, device: str, precision: str = "fp32", tile: int | str = "auto") -> Remasterer:
        key = (model, device, precision, tile)
        if key not in built:
            built[key] = Remasterer(model, device=device, precision=precision, tile=tile)
        return built[key]

    return get


def test_the_devices_ncnn_sees():
    assert [device.index for device in DEVICES] == list(range(len(DEVICES)))
    for device in DEVICES:
        assert device.name and device.kind in ("discrete", "integrated", "virtual", "cpu", "other")


def test_animevideov3_on_vulkan_gives_the_cpu_result(pipelines):
    image = photo(48)
    cpu = pipelines(ANIME, "cpu").run(image.astype(np.float32) / 255)
    ours_image = pipelines(ANIME, "vulkan").run_image(rio.load(image.astype(np.float32) / 255))
    ours = rio.to_numpy(ours_image)
    assert ours.shape == cpu.shape == (192, 192, 3)
    assert psnr(ours, cpu) >= BAR_DB, f"{psnr(ours, cpu):.1f} dB"
    assert ours_image.meta.extras["stages"] == [{"stage": ANIME, "device": "vulkan:0", "precision": "fp32"}]


def test_x4plus_small_case(pipelines):
    image = photo(16).astype(np.float32) / 255
    cpu = pipelines("realesrgan-x4plus", "cpu").run(image)
    ours = pipelines("realesrgan-x4plus", "vulkan").run(image)
    assert ours.shape == (64, 64, 3)
    assert psnr(ours, cpu) >= BAR_DB, f"{psnr(ours, cpu):.1f} dB"


def test_fp16_where_the_device_has_it(pipelines):
    pipeline = pipelines(ANIME, "vulkan", "fp16")
    image = photo(32).astype(np.float32) / 255
    out = pipeline.run_image(rio.load(image))
    ran = out.meta.extras["stages"][0]["precision"]
    assert ran == ("fp16" if DEVICES[0].fp16 else "fp32")
    # fp16 storage and arithmetic: further from fp32 than fp32 is, but still close.
    assert psnr(rio.to_numpy(out), pipelines(ANIME, "cpu").run(image)) >= 40.0


def test_16_bit_keeps_its_depth_on_vulkan(pipelines):
    deep = (photo(24).astype(np.uint32) * 257).astype(np.uint16)
    pipeline = pipelines(ANIME, "vulkan", "auto")
    out = pipeline.run_image(rio.load(deep))
    assert out.meta.extras["stages"][0]["precision"] == "fp32"  # auto keeps fp32 for 16-bit inputs, fp16 or not
    ours, cpu = rio.to_numpy(out), pipelines(ANIME, "cpu").run(deep)
    assert ours.dtype == cpu.dtype == np.uint16 and len(np.unique(ours)) > 5_000
    assert psnr(ours, cpu) >= BAR_DB


def test_bf16_is_refused_with_one_line():
    with pytest.raises(UsageError, match=f"{ANIME}: bf16 does not run on Vulkan") as info:
        Remasterer(ANIME, device="vulkan", precision="bf16")
    assert "\n" not in info.value.for_cli()


def test_alpha_goes_through_the_network_on_vulkan(pipelines):
    rgba = np.dstack([photo(24), np.linspace(0, 255, 24 * 24).reshape(24, 24).astype(np.uint8)])
    cpu = pipelines(ANIME, "cpu").run(rgba)
    ours = pipelines(ANIME, "vulkan").run(rgba)
    assert ours.shape == cpu.shape == (96, 96, 4) and ours.dtype == np.uint8
    assert psnr(ours[..., :3], cpu[..., :3]) >= BAR_DB
    assert psnr(ours[..., 3], cpu[..., 3]) >= BAR_DB


def test_gray_stays_gray_on_vulkan(pipelines):
    gray = np.ascontiguousarray(data.camera()[200:224, 200:224])
    cpu = pipelines(ANIME, "cpu").run(PILImage.fromarray(gray))
    ours = pipelines(ANIME, "vulkan").run(PILImage.fromarray(gray))
    assert ours.mode == cpu.mode == "L" and ours.size == (96, 96)
    assert psnr(np.asarray(ours), np.asarray(cpu)) >= BAR_DB


def test_no_seams_where_tiles_meet(pipelines):
    """Tiles of 16 pixels (with their overlap) on a 48-pixel photo: no seam shows against the untiled CPU result."""
    image = photo(48, top=180, left=200).astype(np.float32) / 255
    cpu = pipelines(ANIME, "cpu", tile=0).run(image)
    tiled = pipelines(ANIME, "vulkan", tile=16).run(image)
    whole = pipelines(ANIME, "vulkan", tile=0).run(image)
    assert psnr(tiled, cpu) >= BAR_DB and psnr(whole, cpu) >= BAR_DB
    # Along the seams (output rows and columns 64 and 128) as well as anywhere else.
    for seam in (64, 128):
        band = slice(seam - 4, seam + 4)
        assert psnr(tiled[band], cpu[band]) >= BAR_DB and psnr(tiled[:, band], cpu[:, band]) >= BAR_DB


def test_the_command_line_on_vulkan(tmp_path, pipelines):
    source = tmp_path / "photo.png"
    PILImage.fromarray(photo(24)).save(source)
    for device in ("vulkan", "cpu"):
        assert main(["upscale", str(source), "-o", str(tmp_path / f"{device}.png"), "--model", ANIME,
                     "--device", device, "--precision", "fp32"]) == 0
    ours, cpu = (np.asarray(PILImage.open(tmp_path / f"{device}.png")) for device in ("vulkan", "cpu"))
    assert ours.shape == (96, 96, 3)
    assert psnr(ours, cpu) >= BAR_DB


def test_auto_ignores_a_cpu_vulkan(monkeypatch):
    if any(device.real_gpu for device in DEVICES):
        pytest.skip("this machine has a real Vulkan GPU, which auto may take")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    pipeline = Remasterer(ANIME, device="auto")
    assert pipeline.vulkan is None
    assert pipeline.stage_plan()[0]["device"] == "cpu"


def test_no_vulkan_loader_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setattr(vulkan, "has_vulkan_loader", lambda: False)
    vulkan.forget_devices()
    try:
        with pytest.raises(UsageError, match="no Vulkan loader on this machine") as info:
            Remasterer(ANIME, device="vulkan")
        assert "apt-get install libvulkan1 mesa-vulkan-drivers" in info.value.for_cli()
        assert Remasterer(ANIME, device="cpu").vulkan is None
    finally:
        monkeypatch.undo()
        vulkan.forget_devices()


def test_a_stage_without_an_ncnn_model_runs_on_the_cpu_with_a_note(caplog):
    pipeline = Remasterer(f"{ANIME} | bicubic(scale=0.5)", device="vulkan", precision="fp32")
    assert [step["device"] for step in pipeline.stage_plan()] == ["vulkan:0", "cpu"]
    assert any("bicubic: does not run on Vulkan; runs on the CPU" in r.getMessage() for r in caplog.records)


# -- model files, converted for ncnn on first use -----------------------------------------------------------------


def _tiny_x2_file(path):
    """A Real-ESRGAN x2 layout (pixel unshuffle in front of an RRDB trunk) with random weights, as a .pth."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    network = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) * 0.2 - 0.1)
    torch.save({"params_ema": network.state_dict()}, path)
    return path


def test_a_model_file_converted_for_vulkan_gives_the_cpu_result(tmp_path):
    """`remaster upscale photo.png -o out.png --model FILE --device vulkan` for an ESRGAN-family file with real
    weights (x4plus-anime's, an RRDB network) and a pixel-unshuffle x2 one: the CPU's fp32 result, and the
    conversion kept in the weights cache with its record."""
    import shutil

    from remaster.weights import get_manager

    anime = tmp_path / "anime.safetensors"
    shutil.copyfile(get_manager().ensure("realesrgan-x4plus-anime"), anime)
    tiny = _tiny_x2_file(tmp_path / "tiny_x2.pth")
    source = tmp_path / "photo.png"
    PILImage.fromarray(photo(16)).save(source)
    for model, scale in ((anime, 4), (tiny, 2)):
        outputs = {}
        for device in ("vulkan", "cpu"):
            outputs[device] = tmp_path / f"{model.stem}-{device}.png"
            assert main(["upscale", str(source), "-o", str(outputs[device]), "--model", str(model),
                         "--device", device, "--precision", "fp32"]) == 0
        ours, cpu = (np.asarray(PILImage.open(outputs[device])) for device in ("vulkan", "cpu"))
        assert ours.shape == (16 * scale, 16 * scale, 3)
        assert psnr(ours, cpu) >= BAR_DB, f"{model.name}: {psnr(ours, cpu):.1f} dB"
        from remaster.weights import sha256_file

        record = get_manager().folder / "ncnn" / f"{sha256_file(model)}-v1.json"
        assert record.is_file(), f"no conversion record for {model.name}"


def test_odd_sizes_for_a_pixel_unshuffle_model_are_padded_as_spandrel_pads_them(tmp_path):
    """The ncnn graph needs sides that are multiples of 2 here: the runner pads by reflection and crops, as
    spandrel does on the CPU (the pipeline usually pads to the stage's multiple before; this is the runner's own
    guarantee)."""
    import torch

    from remaster_realesrgan.converted import converted_model
    from remaster_realesrgan.stage import load_descriptor

    path = _tiny_x2_file(tmp_path / "tiny_x2.pth")
    descriptor = load_descriptor(path)
    made = converted_model(tmp_path / "ncnn", source=path, descriptor=lambda: descriptor, stage="tiny")
    network = vulkan.NcnnNetwork((made.param, made.weights), DEVICES[0], "fp32", scale=made.scale,
                                 pad_multiple=made.pad_multiple)
    pixels = torch.rand((1, 3, 13, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = descriptor(pixels).numpy()
    got = network(pixels).numpy()
    assert got.shape == want.shape == (1, 3, 26, 34)
    assert psnr(got.clip(0, 1), want.clip(0, 1)) >= BAR_DB


def test_an_esrgan_plus_file_runs_on_the_cpu_with_a_note(tmp_path, caplog):
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    path = tmp_path / "plus.pth"
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4, plus=True).state_dict(), path)
    pipeline = Remasterer(str(path), device="vulkan", precision="fp32")
    assert [step["device"] for step in pipeline.stage_plan()] == ["cpu"]
    assert any("plus: does not run on Vulkan; runs on the CPU" in r.getMessage() for r in caplog.records)


def test_a_converted_model_file_in_fp16_where_the_device_has_it(tmp_path):
    """fp32 weights in the converted file; ncnn narrows them to fp16 itself on a device with fp16 (forced here,
    whatever ``auto`` would pick)."""
    path = _tiny_x2_file(tmp_path / "tiny_x2.pth")
    image = photo(16).astype(np.float32) / 255
    cpu = Remasterer(str(path), device="cpu", precision="fp32").run(image)
    out = Remasterer(str(path), device="vulkan", precision="fp16").run_image(rio.load(image))
    assert out.meta.extras["stages"][0]["precision"] == ("fp16" if DEVICES[0].fp16 else "fp32")
    assert psnr(rio.to_numpy(out), cpu) >= 40.0  # the fp16 bar of test_fp16_where_the_device_has_it
