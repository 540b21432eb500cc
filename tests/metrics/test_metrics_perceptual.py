"""LPIPS and the VGG distance, on random weights written into a private cache (no network, no real weights).

The built-in specs carry the official sha256 of most files, which random weights cannot have; the computation
tests therefore use a manager over the same specs with the hashes removed (pinned on first use), while the
tests of the missing-file and wrong-file errors use the real specs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from remaster.errors import ChecksumError, WeightsError, WeightsNotFoundError
from remaster.metrics import MetricError, lpips, perceptual, vgg_distance
from remaster.metrics.builtin import builtin_weights_specs
from remaster.weights import WeightsManager, WeightsRegistry

_REAL_MANAGER = perceptual._weights_manager  # the module fixture below replaces it
_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}


def _random_features(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's ``features.*`` keys and He-scaled random values."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in getattr(torchvision.models, arch)(weights=None).features.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        scale = (2.0 / torch.Size(shape[1:]).numel()) ** 0.5 if key.endswith("weight") else 0.01
        state[f"features.{key}"] = torch.randn(shape, generator=g) * scale
    return state


def _random_lins(net: str, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand((1, c, 1, 1), generator=g) for i, c in enumerate(_CHANNELS[net])}


def _unpinned_manager(root: Path) -> WeightsManager:
    registry = WeightsRegistry()
    registry.add_all([dataclasses.replace(s, sha256=None) for s in builtin_weights_specs()], plugin="test")
    return WeightsManager(registry, root=root)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Random backbones and linear layers under the registered file names; the metrics use this cache."""
    manager = _unpinned_manager(tmp_path_factory.mktemp("metrics-cache"))
    manager.folder.mkdir(parents=True)
    torch.save(_random_features("alexnet", 1), manager.path("torchvision-alexnet"))
    torch.save(_random_features("vgg16", 2), manager.path("torchvision-vgg16"))
    torch.save(_random_features("vgg19", 3), manager.path("torchvision-vgg19"))
    torch.save(_random_lins("alex", 4), manager.path("lpips-alex-v0.1"))
    torch.save(_random_lins("vgg", 5), manager.path("lpips-vgg-v0.1"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(perceptual, "_weights_manager", lambda: manager)
        perceptual.clear_cache()
        yield manager
    perceptual.clear_cache()


@pytest.fixture
def images() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Three clean 32x40 images and three noisier versions of them (sigma 0.02, 0.1, 0.3)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand((3, 3, 32, 40), generator=g)
    noisy = [(clean + s * torch.randn(clean.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.1, 0.3)]
    return clean, noisy


@pytest.mark.parametrize("metric", [
    pytest.param(lambda a, b, **kw: lpips(a, b, net="alex", **kw), id="lpips-alex"),
    pytest.param(lambda a, b, **kw: lpips(a, b, net="vgg", **kw), id="lpips-vgg"),
    pytest.param(lambda a, b, **kw: vgg_distance(a, b, **kw), id="vgg"),
])
def test_distance_properties(metric, random_weights, images):
    clean, noisy = images
    assert torch.equal(metric(clean, clean, data_range=1.0), torch.zeros(3))
    # one batch: the first image at three noise levels against itself clean; each row is its own value
    levels = torch.stack([n[0] for n in noisy])
    values = metric(levels, clean[:1].expand(3, -1, -1, -1), data_range=1.0)
    assert values.shape == (3,) and values.dtype == torch.float32
    assert 0 < values[0] < values[1] < values[2]
    torch.testing.assert_close(metric(levels[2:], clean[:1], data_range=1.0), values[2:])
    torch.testing.assert_close(metric(clean[:1].expand(3, -1, -1, -1), levels, data_range=1.0), values)  # symmetric
    assert metric(levels, clean[:1].expand(3, -1, -1, -1), data_range=1.0, reduction="mean").item() == \
        pytest.approx(values.mean().item())
    # numpy HWC uint8 with data_range=255 is the same image
    a = (noisy[1][0] * 255).round().byte().permute(1, 2, 0).numpy()
    b = (clean[0] * 255).round().byte().permute(1, 2, 0).numpy()
    as_numpy = metric(a, b, data_range=255)
    assert isinstance(as_numpy, float)
    expected = metric(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255,
                      torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255, data_range=1.0)
    assert as_numpy == pytest.approx(expected.item(), rel=1e-5)


def test_vgg_distance_layers_and_criterion(random_weights, images):
    clean, noisy = images
    a, b = noisy[1], clean
    conv = vgg_distance(a, b, data_range=1.0, layers=("conv2_2",))
    relu = vgg_distance(a, b, data_range=1.0, layers="relu3_4")
    both = vgg_distance(a, b, data_range=1.0, layers={"conv2_2": 0.5, "relu3_4": 2.0})
    torch.testing.assert_close(both, 0.5 * conv + 2.0 * relu)
    l2 = vgg_distance(a, b, data_range=1.0, layers=("conv2_2",), criterion="l2")
    assert not torch.allclose(l2, conv)
    grey = vgg_distance(a[:, :1], b[:, :1], data_range=1.0, layers=("conv1_2",))
    torch.testing.assert_close(grey, vgg_distance(a[:, :1].expand(-1, 3, -1, -1), b[:, :1].expand(-1, 3, -1, -1),
                                                  data_range=1.0, layers=("conv1_2",)))
    with pytest.raises(MetricError, match="unknown VGG19 layer 'conv6_1'"):
        vgg_distance(a, b, data_range=1.0, layers=("conv6_1",))
    with pytest.raises(MetricError, match="criterion"):
        vgg_distance(a, b, data_range=1.0, criterion="fro")
    with pytest.raises(MetricError, match="net must be"):
        lpips(a, b, data_range=1.0, net="squeeze")
    with pytest.raises(TypeError):
        lpips(a, b)  # type: ignore[call-arg]


def test_gradients_reach_the_input_and_not_the_network(random_weights, images):
    clean, noisy = images
    x = noisy[1].clone().requires_grad_()
    loss = vgg_distance(x, clean, data_range=1.0, layers=("conv3_4",), reduction="mean") + lpips(
        x, clean, data_range=1.0, reduction="mean")
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for net in perceptual._cache.values() for p in net.parameters())


def test_missing_weights_say_what_to_run(tmp_path, monkeypatch, images):
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path))
    monkeypatch.setattr(perceptual, "_weights_manager", _REAL_MANAGER)
    perceptual.clear_cache()
    clean, noisy = images
    with pytest.raises(WeightsNotFoundError) as info:
        lpips(noisy[0], clean, data_range=1.0)
    assert "remaster weights fetch torchvision-alexnet" in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="torchvision-vgg19"):
        vgg_distance(noisy[0], clean, data_range=1.0)


def test_files_are_checked_against_the_official_hash(tmp_path, monkeypatch, images):
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path))
    monkeypatch.setattr(perceptual, "_weights_manager", _REAL_MANAGER)
    perceptual.clear_cache()
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(_random_features("alexnet", 1), folder / "alexnet-owt-7be5be79.pth")  # not the genuine file
    clean, noisy = images
    with pytest.raises(ChecksumError, match="torchvision-alexnet"):
        lpips(noisy[0], clean, data_range=1.0)
    assert not (folder / "alexnet-owt-7be5be79.pth").exists()  # quarantined


def test_a_file_that_is_not_the_network_is_a_weights_error(tmp_path, monkeypatch, images):
    manager = _unpinned_manager(tmp_path)
    manager.folder.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(3)}, manager.path("torchvision-vgg19"))
    monkeypatch.setattr(perceptual, "_weights_manager", lambda: manager)
    perceptual.clear_cache()
    clean, noisy = images
    with pytest.raises(WeightsError, match="not a torchvision vgg19 state dict"):
        vgg_distance(noisy[0], clean, data_range=1.0)
    perceptual.clear_cache()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_parity_with_the_lpips_package(net, tmp_path, monkeypatch, images):
    """The reference implementation with its own v0.1 linear layers and a random backbone (no download)."""
    ref = pytest.importorskip("lpips", reason="the lpips package (test-only peer) is not installed")
    torch.manual_seed(0)
    model = ref.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = model.state_dict()
    features = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")}
    lins = {k: v for k, v in state.items() if k.startswith("lin")}
    manager = _unpinned_manager(tmp_path)
    manager.folder.mkdir(parents=True)
    torch.save(features, manager.path("torchvision-alexnet" if net == "alex" else "torchvision-vgg16"))
    torch.save(lins, manager.path(f"lpips-{net}-v0.1"))
    monkeypatch.setattr(perceptual, "_weights_manager", lambda: manager)
    perceptual.clear_cache()
    clean, noisy = images
    with torch.no_grad():
        expected = model(noisy[1], clean, normalize=True).flatten()
    torch.testing.assert_close(lpips(noisy[1], clean, data_range=1.0, net=net), expected)
    perceptual.clear_cache()


def test_numpy_grey_is_repeated_to_rgb(random_weights):
    rng = np.random.default_rng(0)
    a = rng.random((40, 40))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert lpips(a, b, data_range=1.0) == pytest.approx(
        lpips(np.repeat(a[..., None], 3, axis=2), np.repeat(b[..., None], 3, axis=2), data_range=1.0))
