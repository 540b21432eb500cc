"""degrade.realesrgan: determinism under a seed, output statistics, config overrides, the stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer
from remaster.errors import StageError, UsageError
from remaster.pipeline.stage import scaled_size
from remaster.stages.highorder import (
    KERNEL_TYPES,
    RealESRGANDegradation,
    RealESRGANSettings,
    _blur_kernel,
    _sinc_kernel,
    load_settings,
)


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    """Eight 64x64 patches of a colour photo, (8, 3, 64, 64) in [0, 1]."""
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    return torch.stack([image[:, 64 * i:64 * i + 64, 100:164] for i in range(8)])


def test_same_seed_same_output_and_another_seed_differs(hr):
    first = RealESRGANDegradation(seed=7)(hr)
    again = RealESRGANDegradation(seed=7)(hr)
    other = RealESRGANDegradation(seed=8)(hr)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_saved_state_replays_the_next_batch(hr):
    degrade = RealESRGANDegradation(seed=3)
    degrade(hr)
    state = degrade.state_dict()
    expected = degrade(hr)
    degrade(hr)  # move on
    degrade.load_state_dict(state)
    assert torch.equal(degrade(hr), expected)


def test_output_is_an_eight_bit_quarter_size_image_close_to_the_original(hr):
    lr = RealESRGANDegradation(seed=0)(hr)
    assert lr.shape == (8, 3, 16, 16) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal((lr * 255).round() / 255, lr)  # quantised as a saved image is
    # Degraded, yet still the same picture: per-image mean brightness within a few levels of the original's
    # (blur, resize and zero-mean noise keep it; JPEG and clipping move it slightly).
    reference = torch.nn.functional.interpolate(hr, size=(16, 16), mode="area")
    assert (lr.mean(dim=(1, 2, 3)) - reference.mean(dim=(1, 2, 3))).abs().max() < 0.06
    # ... and actually degraded: no image equals the clean downscale.
    assert ((lr - reference).abs().mean(dim=(1, 2, 3)) > 0.005).all()


def test_kernels_are_normalised_and_every_family_is_drawn():
    rng = np.random.default_rng(0)
    s = RealESRGANSettings()
    for kind_index in range(len(KERNEL_TYPES)):
        prob = [0.0] * len(KERNEL_TYPES)
        prob[kind_index] = 1.0
        kernel = _blur_kernel(rng, prob, 0.0, s.blur_sigma, s.betag_range, s.betap_range)
        assert kernel.shape == (21, 21) and abs(kernel.sum() - 1) < 1e-9 and np.isfinite(kernel).all()
    sinc = _sinc_kernel(np.pi / 2, 13)
    assert abs(sinc.sum() - 1) < 1e-9 and sinc.argmax() == 13 * 6 + 6 and sinc.min() < 0  # ringing lobes


def test_noise_free_settings_keep_the_picture_closer(hr):
    quiet = RealESRGANSettings.from_mapping({"noise_range": [0, 0], "noise_range2": [0, 0],
                                             "gaussian_noise_prob": 1, "gaussian_noise_prob2": 1,
                                             "jpeg_range": [95, 95], "jpeg_range2": [95, 95]})
    reference = torch.nn.functional.interpolate(hr, size=(16, 16), mode="area")
    error_quiet = (RealESRGANDegradation(quiet, seed=1)(hr) - reference).abs().mean()
    error_default = (RealESRGANDegradation(seed=1)(hr) - reference).abs().mean()
    assert error_quiet < error_default


def test_config_file_overrides_and_rejects_unknown_keys(tmp_path):
    good = tmp_path / "deg.json"
    good.write_text(json.dumps({"degradation": {"sinc_prob": 0.5, "noise_range": [2, 4]}}))
    settings = load_settings(good)
    assert settings.sinc_prob == 0.5 and settings.noise_range == [2.0, 4.0]
    assert settings.final_sinc_prob == 0.8  # untouched default
    toml = tmp_path / "deg.toml"
    toml.write_text("[degradation]\nfinal_sinc_prob = 0.0\n")
    assert load_settings(toml).final_sinc_prob == 0.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"noise_rnage": [1, 2]}))
    with pytest.raises(UsageError, match="unknown degradation setting 'noise_rnage'"):
        load_settings(bad)
    bad.write_text(json.dumps({"sinc_prob": 2}))
    with pytest.raises(UsageError, match="probability between 0 and 1"):
        load_settings(bad)


def test_stage_gives_the_same_image_alone_or_in_a_batch_and_the_planned_size(hr):
    remasterer = Remasterer(["degrade.realesrgan(seed=5)"])
    alone = remasterer.run(hr[2:3].clone())
    batch = remasterer.run(hr[:4].clone())
    assert alone.shape == (1, 3, 16, 16)
    assert torch.equal(batch[2:3], alone)
    odd = Remasterer(["degrade.realesrgan(seed=1, scale=0.5)"]).run(np.zeros((23, 17, 3), np.uint8))
    assert odd.shape == (*scaled_size(23, 17, 0.5), 3)


def test_stage_refuses_a_scale_that_is_not_one_over_an_integer():
    with pytest.raises(StageError, match="1/k"):
        Remasterer(["degrade.realesrgan(scale=0.3)"]).run(np.zeros((32, 32, 3), np.uint8))


def test_unseeded_runs_differ_and_leave_the_global_rngs_alone(hr):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    first = RealESRGANDegradation()(hr)
    second = RealESRGANDegradation()(hr)
    assert not torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected_torch) and np.array_equal(np.random.rand(3), expected_numpy)


def test_stage_reads_a_config_file(hr, tmp_path):
    config = tmp_path / "mild.json"
    config.write_text(json.dumps({"degradation": {"noise_range": [0, 0], "noise_range2": [0, 0],
                                                  "gaussian_noise_prob": 1, "gaussian_noise_prob2": 1}}))
    quiet = Remasterer([f"degrade.realesrgan(seed=2, config='{config}')"]).run(hr[:1].clone())
    loud = Remasterer(["degrade.realesrgan(seed=2)"]).run(hr[:1].clone())
    assert quiet.shape == loud.shape and not torch.equal(quiet, loud)
    with pytest.raises(UsageError, match="cannot read the degradation config") as caught:
        Remasterer([f"degrade.realesrgan(config='{tmp_path / 'missing.json'}')"]).run(hr[:1].clone())
    assert str(caught.value.path).endswith("missing.json")  # the user's own error, passed through as raised
