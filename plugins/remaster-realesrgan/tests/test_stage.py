"""The Real-ESRGAN stages through remaster's pipeline: weights, scales, tiling, alpha, depth, files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from skimage import data

from remaster import (
    ChecksumError,
    Remasterer,
    StageError,
    UnsafeWeightsError,
    WeightsNotFoundError,
    WrongWeightsError,
    io,
)
from remaster.plugin import import_reference
from remaster.testing import check_stage
from remaster.weights import get_manager, load_state_dict, save_state_dict, sha256_file
from remaster_realesrgan.catalogue import WEIGHTS


def crop(height: int = 40, width: int = 36) -> np.ndarray:
    return data.astronaut()[90:90 + height, 160:160 + width]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.mark.parametrize("name", ["realesr-animevideov3", "realesrgan-x4plus-anime", "realesrgan-x4plus"])
def test_packaged_conversion_matches_the_pinned_hash(name):
    # ensure() converts on first use and refuses a file whose sha256 differs from the pin.
    path = get_manager().ensure(name)
    expected = next(w.sha256 for w in WEIGHTS if w.name == name)
    assert sha256_file(path) == expected


def test_compact_model_conforms_to_the_stage_contract():
    check_stage("realesr-animevideov3")


def test_x4plus_conforms_to_the_stage_contract():
    check_stage("realesrgan-x4plus", sizes=((17, 23),), channels=(3,))


@pytest.mark.parametrize("stage, shape", [
    ("realesr-animevideov3", (160, 144, 3)),
    ("realesr-animevideov3(scale=2)", (80, 72, 3)),
    ("realesr-animevideov3(scale=3)", (120, 108, 3)),
    ("realesr-animevideov3(scale=1.5)", (60, 54, 3)),
])
def test_any_output_scale(stage, shape):
    assert Remasterer(stage).run(crop()).shape == shape


def test_lower_scale_is_the_native_output_resampled():
    native = Remasterer("realesr-animevideov3", precision="fp32").run(crop())
    half = Remasterer("realesr-animevideov3(scale=2)", precision="fp32").run(crop())
    expected = Remasterer("lanczos(scale=0.5)").run(native)
    assert np.abs(half.astype(int) - expected.astype(int)).max() <= 1


def test_tiled_matches_untiled_without_seams():
    img = data.astronaut()[100:196, 120:200]  # 96x80: several 32-pixel tiles
    whole = Remasterer("realesr-animevideov3", precision="fp32", tile=0).run(img)
    tiled = Remasterer("realesr-animevideov3", precision="fp32", tile=32).run(img)
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert psnr(whole, tiled) > 50
    assert diff.max() <= 4
    # No seam: the difference along tile borders is no larger than elsewhere.
    assert diff[124:132].mean() < 1.0 and diff[:, 124:132].mean() < 1.0


@pytest.mark.slow
def test_x4plus_tiled_matches_untiled():
    img = crop(64, 64)
    whole = Remasterer("realesrgan-x4plus", precision="fp32", tile=0).run(img)
    tiled = Remasterer("realesrgan-x4plus", precision="fp32", tile=32).run(img)
    assert psnr(whole, tiled) > 45
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 8


def test_alpha_goes_through_the_network_or_lanczos():
    rgba = np.dstack([crop(), np.zeros(crop().shape[:2], np.uint8)])
    rgba[:, 18:, 3] = 255
    for alpha in ("process", "resize"):
        out = Remasterer(f"realesr-animevideov3(alpha={alpha})").run(rgba)
        assert out.shape == (160, 144, 4)
        assert out[:, :60, 3].max() <= 8 and out[:, 84:, 3].min() >= 247


def test_gray_and_16_bit_stay_as_they_came():
    gray16 = (crop()[..., 1].astype(np.uint16) * 257)
    out = Remasterer("realesr-animevideov3").run(gray16)
    assert out.shape == (160, 144) and out.dtype == np.uint16
    assert len(np.unique(out)) > 256  # real 16-bit output, not 8-bit scaled up


def test_official_format_file_runs_like_the_registered_stage(tmp_path):
    weights = load_state_dict(get_manager().ensure("realesr-animevideov3"))
    official = tmp_path / "realesr-animevideov3.pth"
    torch.save({"params_ema": weights}, official)
    from_file = Remasterer([str(official)], precision="fp32").run(crop())
    registered = Remasterer("realesr-animevideov3", precision="fp32").run(crop())
    np.testing.assert_array_equal(from_file, registered)
    scaled = Remasterer([f"{official}(scale=2)"]).run(crop())
    assert scaled.shape == (80, 72, 3)


def test_pixel_unshuffle_x2_file_pads_odd_sizes(tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    torch.manual_seed(0)
    # RealESRGAN_x2plus's layout, small: pixel-unshuffle by 2 into a x4 RRDBNet.
    net = RRDBNet(in_nc=12, out_nc=3, num_filters=16, num_blocks=1, scale=4, shuffle_factor=2)
    path = tmp_path / "tiny_x2plus.safetensors"
    save_state_dict(net.state_dict(), path)
    out = Remasterer([str(path)], precision="fp32").run(crop(17, 23))
    assert out.shape == (34, 46, 3)


def test_unsafe_pickle_model_is_refused_before_any_work(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"params_ema": {"conv_first.weight": Payload()}}, evil)
    with pytest.raises(UnsafeWeightsError, match="evil.pth"):
        Remasterer([str(evil)])
    assert not marker.exists()


def test_not_an_upscaler_file_is_a_clear_error(tmp_path):
    path = tmp_path / "random.safetensors"
    save_state_dict({"foo.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(StageError, match="random.safetensors"):
        Remasterer([str(path)])


def test_missing_official_weights_say_how_to_get_them():
    remasterer = Remasterer("realesrgan-x2plus")
    with pytest.raises(WeightsNotFoundError) as caught:
        remasterer.run(crop(8, 8))
    message = str(caught.value)
    assert "remaster weights fetch realesrgan-x2plus-official" in message
    assert "remaster weights import" in message and "RealESRGAN_x2plus.pth" in message


def tiny_x2plus(path: Path) -> Path:
    """RealESRGAN_x2plus's layout (pixel-unshuffle by 2 into an x4 RRDBNet), small and random, as released."""
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def test_importing_junk_as_x2plus_is_refused_and_the_right_file_then_runs(tmp_path, monkeypatch, capsys):
    from remaster.cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("REMASTER_CACHE", str(cache))
    junk = tmp_path / "junk" / "RealESRGAN_x2plus.pth"
    junk.parent.mkdir()
    junk.write_bytes(b"\xff" + bytes(range(256)) * 16)  # what a broken download might leave
    assert main(["weights", "import", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"remaster: error: {junk}: is not weights 'realesrgan-x2plus-official': ")
    assert "not a PyTorch checkpoint" in err and err.count("\n") == 1
    compact = tmp_path / "compact" / "RealESRGAN_x2plus.pth"  # a real network, but the wrong one
    compact.parent.mkdir()
    torch.save(load_state_dict(get_manager().ensure("realesr-animevideov3")), compact)
    assert main(["weights", "import", str(compact)]) == 1
    assert "holds a Compact x4 network, expected ESRGAN x2" in capsys.readouterr().err
    assert not (cache / "weights" / "pins.json").exists()  # nothing was pinned: no --replace needed now
    assert main(["weights", "import", str(tiny_x2plus(tmp_path / "RealESRGAN_x2plus.pth"))]) == 0
    assert Remasterer("realesrgan-x2plus", precision="fp32").run(crop(8, 8)).shape == (16, 16, 3)


def test_a_damaged_packaged_file_is_rebuilt_on_the_next_run(tmp_path, monkeypatch, capsys):
    from remaster.cli import main

    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    name = "realesr-animevideov3"
    expected = next(w.sha256 for w in WEIGHTS if w.name == name)
    manager = get_manager()
    path = manager.ensure(name)
    path.write_bytes(path.read_bytes()[:-8] + bytes(8))
    with pytest.raises(ChecksumError) as caught:
        manager.ensure(name)
    message = str(caught.value)
    assert "rebuilt from the packaged weights on the next run" in message
    assert "remaster weights fetch" not in message  # the packaged file has no URL to fetch from
    assert not path.exists() and len(list((tmp_path / "cache" / "weights" / "quarantine").iterdir())) == 1
    assert sha256_file(manager.ensure(name)) == expected  # what the message says is true
    # 'remaster weights verify' says the same, and 'remaster weights fetch' rebuilds packaged weights offline.
    path.write_bytes(b"damaged")
    assert main(["weights", "verify", name]) == 1
    assert capsys.readouterr().out.strip() == (f"{name}  mismatch → quarantined; rebuilt from the packaged weights "
                                               "on the next run")
    assert main(["weights", "verify", name]) == 0  # absent but packaged: nothing to fix
    assert capsys.readouterr().out.strip() == f"{name}  packaged"
    assert main(["weights", "fetch", name]) == 0
    assert capsys.readouterr().out.strip() == f"{name}: {path}"
    assert sha256_file(path) == expected


def test_each_weights_check_knows_its_network(tmp_path):
    checks = {spec.name: import_reference(spec.check) for spec in WEIGHTS}  # every reference resolves
    compact = get_manager().ensure("realesr-animevideov3")
    checks["realesr-general-x4v3-official"](compact)
    checks["realesrgan-x2plus-official"](tiny_x2plus(tmp_path / "x2.pth"))
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    x4 = tmp_path / "x4.safetensors"
    save_state_dict(RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict(), x4)
    checks["realesrgan-x4plus-official"](x4)
    with pytest.raises(WrongWeightsError, match="holds an ESRGAN x2 network, expected ESRGAN x4"):
        checks["realesrgan-x4plus"](tmp_path / "x2.pth")
    with pytest.raises(WrongWeightsError, match="holds a Compact x4 network, expected ESRGAN x2"):
        checks["realesrgan-x2plus-official"](compact)


def test_default_upscaler_is_x4plus():
    assert [s.name for s in Remasterer().stages] == ["realesrgan-x4plus"]


def test_default_upscale_works_offline_with_an_empty_cache(tmp_path):
    """First run converts the packaged weights, the second loads them; no socket may connect."""
    source = tmp_path / "in.png"
    PILImage.fromarray(crop(16, 16)).save(source)
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import socket, sys
        def refuse(*args, **kwargs):
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from remaster.cli import main
        sys.exit(main(["upscale", {str(source)!r}, "-o", sys.argv[1], "-q"]))
    """)
    env = {**os.environ, "REMASTER_CACHE": str(cache)}
    for run in ("first", "second"):
        target = tmp_path / f"{run}.png"
        result = subprocess.run([sys.executable, "-c", script, str(target)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert PILImage.open(target).size == (64, 64)
        converted = cache / "weights" / "realesrgan-x4plus.ncnn.safetensors"
        if run == "first":
            first_mtime = converted.stat().st_mtime_ns
    assert converted.stat().st_mtime_ns == first_mtime  # loaded, not converted again
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "first.png")),
                                  np.asarray(PILImage.open(tmp_path / "second.png")))


def test_an_untiled_network_reports_progress_from_inside_its_forward_pass():
    image = data.astronaut()[:160, :160]
    seen: list[float] = []
    out = Remasterer(["realesr-animevideov3"], tile=0, precision="fp32").run(image, progress=seen.append)
    inside = [f for f in seen if f < 1.0]
    assert len(inside) >= 10 and seen == sorted(seen) and seen[-1] == 1.0
    # the hooks change nothing: the same pixels as a run without a progress callback
    np.testing.assert_array_equal(out, Remasterer(["realesr-animevideov3"], tile=0, precision="fp32").run(image))


def test_convolution_progress_is_a_share_of_multiply_adds():
    import spandrel
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    from remaster_realesrgan.stage import ConvolutionProgress

    torch.manual_seed(0)
    descriptor = spandrel.ModelLoader().load_from_state_dict(
        RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=2, scale=4).state_dict())
    progress = ConvolutionProgress(descriptor, torch.zeros(1, 3, 8, 8))
    steps = np.diff([0.0, *progress.cumulative])
    assert progress.cumulative[-1] == pytest.approx(1.0) and (steps > 0).all()
    # the convolutions after the x4 upsampling run on 16x the pixels: they weigh most
    assert steps[-1] > steps[0]


class _Manager:
    """Just enough of a WeightsManager: files in a folder, ``ensure`` records what was asked for."""

    def __init__(self, folder: Path):
        self.folder, self.asked = folder, []

    def path(self, name: str) -> Path:
        return self.folder / name

    def ensure(self, name: str) -> Path:
        self.asked.append(name)
        return self.path(name)


def test_upscaler_is_a_network_stage_that_names_its_file_through_the_given_manager(tmp_path):
    from remaster.pipeline.stage import NetworkStage
    from remaster_realesrgan.stage import SpandrelUpscaler

    stage = SpandrelUpscaler(weights=("first", "second"))
    assert isinstance(stage, NetworkStage)
    manager = _Manager(tmp_path)
    assert stage.network_file(manager) == tmp_path / "second"  # none cached: the last (producible) choice
    (tmp_path / "first").write_bytes(b"")
    assert stage.network_file(manager) == tmp_path / "first"  # the first cached choice
    assert manager.asked == ["second", "first"]


@pytest.mark.parametrize("stage", ["realesr-animevideov3", "realesr-animevideov3(scale=2)"])
@pytest.mark.parametrize("alpha", [False, True])
def test_integer_result_equals_the_float_path(stage, alpha):
    # Tiled (tile 16 on 30x40): the native-scale run writes integer bands, the resampled one quantises at the end.
    rgb = crop(30, 40)
    array = np.dstack([rgb, np.linspace(0, 255, 40).astype(np.uint8)[None].repeat(30, 0)]) if alpha else rgb
    remasterer = Remasterer(stage, precision="fp32", tile=16)
    image = io.load(array)
    integer = remasterer.run_image(image, quantise=True)
    assert io.is_quantised(integer)
    assert np.array_equal(io.to_numpy(integer), io.to_numpy(remasterer.run_image(image)))
