"""Model files by path: detected from their layout, the network built only when a pipeline prepares the stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from skimage import data

import remaster_realesrgan.stage as stage_module
from remaster import Remasterer, StageInfo, Tiling
from remaster.plugin.host import get_host
from remaster.weights import load_network, save_state_dict
from remaster_realesrgan.plugin import TILE_OVERLAP


def _x2plus() -> torch.nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    torch.manual_seed(0)
    return RRDBNet(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)


def _compact() -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)


def _pth(path: Path, net: torch.nn.Module) -> None:
    torch.save({"params_ema": net.state_dict()}, path)  # as the official releases are


def _legacy_pth(path: Path, net: torch.nn.Module) -> None:
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)  # no zip: read whole, not mapped


def _safetensors(path: Path, net: torch.nn.Module) -> None:
    save_state_dict(net.state_dict(), path)


def _info_from_the_built_network(path: Path) -> StageInfo:
    """The info the plugin gave before it detected files cheaply: from the network spandrel builds."""
    descriptor = load_network(path)
    size = descriptor.size_requirements
    dtypes = ("fp32",) + (("bf16",) if descriptor.supports_bfloat16 else ()) + (
        ("fp16",) if descriptor.supports_half else ())
    return StageInfo(scale=descriptor.scale, scale_param="scale", resample=True,
                     in_channels=(descriptor.input_channels,), min_size=max(1, size.minimum),
                     multiple_of=max(1, size.multiple_of), tiling=Tiling.SUPPORTED, tile_overlap=TILE_OVERLAP,
                     alpha="process", dtypes=dtypes,
                     vulkan=descriptor.architecture.id in ("ESRGAN", "Compact"))  # both are converted for ncnn


@pytest.mark.parametrize("name, net, write", [
    ("x2plus.pth", _x2plus, _pth),
    ("x2plus.safetensors", _x2plus, _safetensors),
    ("compact.pth", _compact, _legacy_pth),
    ("compact.safetensors", _compact, _safetensors),
])
def test_model_file_is_detected_without_building_its_network(tmp_path, monkeypatch, name: str,
                                                             net: Callable[[], torch.nn.Module],
                                                             write: Callable[[Path, torch.nn.Module], None]):
    path = tmp_path / name
    write(path, net())
    built: list[Any] = []
    real_load = stage_module.load_descriptor
    monkeypatch.setattr(stage_module, "load_descriptor", lambda *a, **kw: built.append(a) or real_load(*a, **kw))

    spec = get_host().stage_from_file(path)
    assert built == []  # only the layout was read
    assert spec.plugin == "realesrgan"
    assert spec.info == _info_from_the_built_network(path)

    out = Remasterer([str(path)], precision="fp32").run(data.astronaut()[:8, :12])
    assert out.shape == (8 * spec.info.scale, 12 * spec.info.scale, 3)
    assert len(built) == 1  # built once, by the stage's prepare


def test_find_and_load_network_checks_the_file_in_another_thread_and_passes_its_errors(tmp_path):
    import threading

    from remaster.errors import WeightsNotFoundError
    from remaster.weights import find_and_load_network

    path = tmp_path / "compact.safetensors"
    _safetensors(path, _compact())
    threads = []

    def find() -> Path:
        threads.append(threading.current_thread())
        return path

    found, descriptor = find_and_load_network(find)
    assert found == path and descriptor.scale == 4 and threads[0] is not threading.main_thread()
    with torch.no_grad():
        assert torch.equal(descriptor.model(torch.ones(1, 3, 8, 8)), load_network(path).model(torch.ones(1, 3, 8, 8)))

    def missing() -> Path:
        raise WeightsNotFoundError("weights 'x' are not in the cache")

    with pytest.raises(WeightsNotFoundError, match="not in the cache"):
        find_and_load_network(missing)
