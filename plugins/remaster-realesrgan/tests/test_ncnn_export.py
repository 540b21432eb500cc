"""Networks written for ncnn (``ncnn_export``) and kept in the weights cache (``converted``).

Every form the writer covers is run by ncnn on its CPU path (no Vulkan needed, so these run on any machine with
the ncnn wheel) against the same network in torch, and the real Real-ESRGAN weights go through the writer and back
through the reader (:func:`remaster_realesrgan.ncnn.convert`) unchanged. The Vulkan runs are in test_vulkan.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from remaster.errors import StageError
from remaster.weights import get_manager, load_state_dict, save_state_dict
from remaster_realesrgan.converted import converted_model
from remaster_realesrgan.ncnn import convert
from remaster_realesrgan.ncnn_export import NotConvertible, export

ncnn = pytest.importorskip("ncnn", reason="the ncnn wheel (remaster-realesrgan[vulkan]) is not installed")


def _esrgan(**kwargs) -> nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN(in_nc=kwargs.pop("in_nc", 3), out_nc=3, num_filters=8, num_blocks=kwargs.pop("num_blocks", 1),
                  **kwargs)


def _compact(**kwargs) -> nn.Module:
    from spandrel.architectures.Compact import Compact

    channels = kwargs.pop("channels", 3)
    return Compact(num_in_ch=channels, num_out_ch=channels, num_feat=8, num_conv=2, **kwargs)


def _randomised(network: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) * 0.4 - 0.2)
    return network.eval()


def run_ncnn(param: str, weights: bytes, pixels: np.ndarray, tmp_path: Path) -> np.ndarray:
    """``pixels`` (C, H, W) through the graph with ncnn on the CPU, in fp32."""
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(weights)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = net.opt.use_bf16_packed = False
    assert net.load_param(str(tmp_path / "m.param")) == 0 and net.load_model(str(tmp_path / "m.bin")) == 0
    planar = np.ascontiguousarray(pixels)
    mat = ncnn.Mat(planar)  # borrows planar
    extractor = net.create_extractor()
    try:
        assert extractor.input("data", mat) == 0
        code, out = extractor.extract("output")
        assert code == 0
        return np.array(out, dtype=np.float32, copy=True)
    finally:
        del extractor, mat  # before the net: ncnn's objects must go in this order

FORMS = {
    "RRDB x4": (lambda: _esrgan(scale=4, num_blocks=2), "ESRGAN", 4, 3),
    "RRDB x2, pixel unshuffle": (lambda: _esrgan(in_nc=12, scale=4, shuffle_factor=2), "ESRGAN", 2, 3),
    "RRDB x1, pixel unshuffle": (lambda: _esrgan(in_nc=48, scale=4, shuffle_factor=4), "ESRGAN", 1, 3),
    "RRDB x2, one upconv": (lambda: _esrgan(scale=2), "ESRGAN", 2, 3),
    "RRDB x8": (lambda: _esrgan(scale=8), "ESRGAN", 8, 3),
    "RRDB x4, pixel-shuffle upsampler": (lambda: _esrgan(scale=4, upsampler="pixel_shuffle"), "ESRGAN", 4, 3),
    "RRDB x4, ReLU": (lambda: _esrgan(scale=4, act="relu"), "ESRGAN", 4, 3),
    "Compact x4, PReLU": (lambda: _compact(upscale=4), "Compact", 4, 3),
    "Compact x3, LeakyReLU": (lambda: _compact(upscale=3, act_type="leakyrelu"), "Compact", 3, 3),
    "Compact x2, ReLU": (lambda: _compact(upscale=2, act_type="relu"), "Compact", 2, 3),
    "Compact x2, gray": (lambda: _compact(upscale=2, channels=1), "Compact", 2, 1),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_covered_form_gives_torchs_result_in_ncnn(form, tmp_path):
    make, architecture, scale, channels = FORMS[form]
    network = _randomised(make())
    graph = export(network, architecture=architecture, scale=scale)
    pixels = torch.rand((1, channels, 20, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = network(pixels)[0].numpy()
    got = run_ncnn(graph.param, graph.weights, pixels[0].numpy(), tmp_path)
    assert got.shape == want.shape == (channels, 20 * scale, 24 * scale)
    assert np.abs(got - want).max() < 1e-4
    assert graph.pad_multiple == (4 // scale if "unshuffle" in form else 1)
    assert graph.param.startswith("7767517\n") and "Input input 0 1 data" in graph.param
    assert " output" in graph.param.splitlines()[-1]


@pytest.mark.parametrize(("model", "architecture"), [("realesrgan-x4plus-anime", "ESRGAN"),
                                                     ("realesr-animevideov3", "Compact")])
def test_the_real_weights_go_there_and_back_unchanged(model, architecture, tmp_path):
    """Written by us, read by the reader of the official graphs: the same state dict, bit for bit."""
    from remaster_realesrgan.stage import load_descriptor

    path = get_manager().ensure(model)
    descriptor = load_descriptor(path)
    graph = export(descriptor.model, architecture=architecture, scale=descriptor.scale)
    (tmp_path / "m.param").write_text(graph.param)
    (tmp_path / "m.bin").write_bytes(graph.weights)
    state, kind = convert(tmp_path / "m.param", tmp_path / "m.bin")
    assert kind == {"ESRGAN": "rrdbnet", "Compact": "compact"}[architecture]
    from spandrel import ModelLoader

    rebuilt = ModelLoader().load_from_state_dict(state).model.state_dict()
    original = descriptor.model.state_dict()
    assert rebuilt.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(rebuilt[name], tensor), name


class _Other(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(("network", "architecture", "says"), [
    (lambda: _esrgan(scale=4, plus=True), "ESRGAN", "ESRGAN+"),
    (lambda: _Other(), "SwinIR", "the SwinIR architecture"),
    (lambda: _compact(upscale=2), "ESRGAN", "the ESRGAN architecture"),  # the id must match the network
])
def test_what_is_not_covered_is_named(network, architecture, says):
    with pytest.raises(NotConvertible, match=says):
        export(network(), architecture=architecture, scale=4)


def test_a_strided_convolution_is_named():
    network = _compact(upscale=2)
    network.body[0] = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    with pytest.raises(NotConvertible, match="stride 1"):
        export(network, architecture="Compact", scale=2)


# -- the cache -------------------------------------------------------------------------------------------------


def _model_file(tmp_path: Path) -> tuple[Path, object]:
    from spandrel import ModelLoader

    path = tmp_path / "tiny.safetensors"
    save_state_dict(_randomised(_compact(upscale=2)).state_dict(), path)
    return path, ModelLoader().load_from_state_dict(load_state_dict(path))


def test_a_conversion_is_made_once_and_records_where_it_came_from(tmp_path):
    path, descriptor = _model_file(tmp_path)
    folder = tmp_path / "cache" / "ncnn"
    calls = []

    def load():
        calls.append(1)
        return descriptor

    first = converted_model(folder, source=path, descriptor=load, stage="tiny")
    again = converted_model(folder, source=path, descriptor=load, stage="tiny")
    assert first.converted and not again.converted and len(calls) == 1  # the second never reads the model
    assert again.param == first.param and first.param.parent == folder
    record = json.loads(first.param.with_suffix(".json").read_text())
    from remaster.weights import sha256_file

    assert record["source"] == str(path.resolve()) and record["source_sha256"] == sha256_file(path)
    assert record["architecture"] == "Compact" and record["scale"] == 2 and record["pad_multiple"] == 1
    assert record["bin_sha256"] == sha256_file(first.weights) and record["param_sha256"] == sha256_file(first.param)
    assert record["converter"].startswith("remaster-realesrgan ") and record["spandrel"]
    assert first.param.name.startswith(sha256_file(path))


def test_a_changed_conversion_is_made_again(tmp_path, caplog):
    path, descriptor = _model_file(tmp_path)
    folder = tmp_path / "ncnn"
    first = converted_model(folder, source=path, descriptor=lambda: descriptor, stage="tiny")
    good = first.weights.read_bytes()
    first.weights.write_bytes(good[:-4])  # truncated, as a full disk or a stray edit would leave it
    with caplog.at_level(logging.WARNING):
        again = converted_model(folder, source=path, descriptor=lambda: descriptor, stage="tiny")
    assert again.converted and again.weights.read_bytes() == good
    assert any("is not the file recorded" in record.getMessage() for record in caplog.records)


def test_a_network_without_a_file_is_converted_under_its_content(tmp_path):
    _path, descriptor = _model_file(tmp_path)
    made = converted_model(tmp_path / "ncnn", source=None, descriptor=lambda: descriptor, stage="tiny")
    record = json.loads(made.param.with_suffix(".json").read_text())
    assert record["source"] is None and made.converted
    assert not converted_model(tmp_path / "ncnn", source=None, descriptor=lambda: descriptor,
                               stage="tiny").converted


def test_a_network_that_cannot_be_converted_is_one_stage_error(tmp_path):
    from spandrel import ModelLoader

    path = tmp_path / "plus.pth"
    torch.save(_esrgan(scale=4, plus=True).state_dict(), path)
    descriptor = ModelLoader().load_from_state_dict(load_state_dict(path))
    with pytest.raises(StageError, match="is not available on Vulkan: ncnn cannot be given ESRGAN\\+") as info:
        converted_model(tmp_path / "ncnn", source=path, descriptor=lambda: descriptor, stage="plus")
    assert "--device cpu" in info.value.for_cli() and "\n" not in info.value.for_cli()
    assert not (tmp_path / "ncnn").exists()
